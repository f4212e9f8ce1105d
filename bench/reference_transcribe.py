"""What a user of the reference library would run to do ``s2t-live transcribe --no-split --format json``.

Used by ``bench/transcribe_speed.py`` as the baseline command: load the processor and model with
transformers, read each file (same reader as s2t-live, so the samples are identical), generate, print one
JSON line per file with the generated ids.
"""

from __future__ import annotations

import argparse
import json

import torch
from transformers import Speech2TextForConditionalGeneration, Speech2TextProcessor

from s2t_live.audio import load_audio


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("files", nargs="+")
    parser.add_argument("--model", required=True)
    parser.add_argument("--num-beams", type=int, default=None)
    args = parser.parse_args()
    processor = Speech2TextProcessor.from_pretrained(args.model)
    model = Speech2TextForConditionalGeneration.from_pretrained(args.model).eval()
    options = {"num_beams": args.num_beams} if args.num_beams else {}
    for file in args.files:
        wave = load_audio(file)
        inputs = processor(wave, sampling_rate=16000, return_tensors="pt")
        with torch.inference_mode():
            ids = model.generate(inputs["input_features"], attention_mask=inputs["attention_mask"], **options)
        print(json.dumps({"file": file, "tokens": ids[0].tolist(),
                          "text": processor.decode(ids[0], skip_special_tokens=True)}))


if __name__ == "__main__":
    main()
