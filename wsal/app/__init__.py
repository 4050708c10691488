"""The composing layer (DESIGN §3): code that builds stages from the configs and runs them in
order: stage builders, dataset preparation, the proposal study. Nothing below imports it."""
