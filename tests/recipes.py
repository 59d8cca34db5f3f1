"""Training settings the tests pin, so that they do not move with the recipe's defaults.

PLAIN is the loop as it was before fastvp's recipe (constant lr, no warm-up, one K, one
learning rate for every layer, every validation example, the eager hand-derived backward).
"""

PLAIN = dict(warmup=0, schedule="constant", min_lr_ratio=0.0, curriculum_steps=None,
             curriculum_fraction=0.0, lr_pool=1.0, lr_phi0=1.0, method="fast", val_examples=None)
