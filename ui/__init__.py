"""PySide6 desktop app for s2t-live (installed as ``s2t_live.ui``)."""
