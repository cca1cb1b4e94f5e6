"""Data-parallel training of one run over several processes (issue 18), through ``torch.distributed``.

- :mod:`group`: who this process is (``RANK``/``WORLD_SIZE``/``LOCAL_RANK``, the names ``torchrun``
  sets) and what the ranks agree on each step (stop, checkpoint now, sample now; the losses);
- :mod:`grads`: the LoRA gradients averaged over the ranks, each bucket all-reduced while the
  backward goes on;
- :mod:`shards`: each step's global batch, from one bucket, and this rank's rows of it;
- :mod:`launch`: ``avlora train --num-processes N`` / ``--gpus N`` starting the ranks, watching them,
  passing a cancel to rank 0 and ending every rank when one dies.
"""
