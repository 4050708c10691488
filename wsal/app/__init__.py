"""The composing layer (DESIGN §3): the one route and the code that builds stages from the configs
and runs them in order (stage builders, dataset preparation, the proposal study, real footage).
Nothing below imports it."""
