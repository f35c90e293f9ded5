"""Score-based generative models with linear or nonlinear noising dynamics (DSM / NDSM).

See ``docs/score.md``. The pieces: forward SDEs (:mod:`.sde`), GMM fitting for Langevin drifts
(:mod:`.gmm`), objectives and control variates (:mod:`.objectives`), the score model and EMA
(:mod:`.model`), samplers (:mod:`.samplers`), mode metrics (:mod:`.metrics`), and the entry points
``train`` / ``load_run`` / ``generate`` (:mod:`.train`).
"""
