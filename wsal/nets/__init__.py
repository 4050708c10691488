"""Networks: plain ``nn.Module`` classes and tensor functions, no training loops (DESIGN §3).

``encoders`` (frame encoders, the ImageNet mean/std), ``pooling`` (actor-of-interest pooling,
Guess Where Eq. 1), ``actor_attention`` (the actor-attention network and its tube -> video
pooling) and ``siamfc`` (the SiamFC tracker's network and checkpoints; the tracking is
``wsal.linking.siamfc``). The LightningModules that train them live in ``wsal.models``.
"""
