"""The experiment suite: params files and profiles, preflight, estimate, the grid runner, results, plots."""
