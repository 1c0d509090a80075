"""The networks: attention layers, residual and attention blocks, the families table, complexity."""
