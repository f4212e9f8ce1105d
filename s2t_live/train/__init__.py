"""Recipes that build the training data and train the embedded default model."""
