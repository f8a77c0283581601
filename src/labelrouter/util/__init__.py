"""Small helpers every layer may use: the cores to fork on, private atomic files, dates, per-message bounds."""
