"""The training engine: recipes, one run epoch by epoch, its files; `python -m resattn.train` runs one."""
