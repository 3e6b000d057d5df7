"""Data parallelism over every device (all hosts): one mesh axis "data", parameters replicated,
batches split along their first axis. Also the optional multi-host start-up."""

from __future__ import annotations

import logging

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from asl_jax.errors import ConfigError


def initialize_distributed(config) -> None:
  """`jax.distributed.initialize` when config.distributed (explicit coordinator or from the cluster env)."""
  if not config.distributed:
    return
  kwargs = {}
  if config.coordinator_address:
    kwargs["coordinator_address"] = config.coordinator_address
  if config.num_processes:
    kwargs["num_processes"] = int(config.num_processes)
  if config.process_id >= 0:
    kwargs["process_id"] = int(config.process_id)
  jax.distributed.initialize(**kwargs)
  logging.info("process %d of %d, %d local / %d global devices", jax.process_index(), jax.process_count(),
               jax.local_device_count(), jax.device_count())


class DataParallel:
  """Shardings of a one-axis mesh over all devices."""

  def __init__(self, devices=None):
    devices = np.asarray(jax.devices() if devices is None else devices)
    self.mesh = Mesh(devices, ("data",))
    self.num_devices = devices.size
    self.replicated = NamedSharding(self.mesh, P())
    self.batch = NamedSharding(self.mesh, P("data"))
    self.order = NamedSharding(self.mesh, P(None, "data"))

  def round_batch(self, size: int) -> int:
    """The smallest multiple of the device count >= size."""
    return -(-size // self.num_devices) * self.num_devices

  def check_batch(self, size: int) -> None:
    if size % self.num_devices:
      raise ConfigError(f"config.batch_size={size} must be divisible by the number of devices "
                        f"({self.num_devices})")

  def _put(self, x, sharding):
    if x is None:
      return None
    x = np.asarray(x)
    # Works single- and multi-process: every process holds the same full host array.
    return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])

  def replicate(self, tree):
    return jax.tree_util.tree_map(lambda x: self._put(x, self.replicated), tree)

  def shard_batch(self, x):
    return self._put(x, self.batch)

  def shard_order(self, x):
    return self._put(x, self.order)
