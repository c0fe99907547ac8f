"""Small datasets as tensors on the training device, batched by index.

A per-item Python loader costs far more than a model step on 8x8 digits; here one batch is
one tensor gather. Lightning still sees an ordinary DataLoader, so it can shard it across
processes (DDP) with its DistributedSampler.
"""

from __future__ import annotations

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from dgm.data.base import Dataset, Split

# keep datasets up to this size on the accelerator; larger ones stay in host memory
MAX_DEVICE_BYTES = 2 * 1024**3


class TensorData(torch.utils.data.Dataset):
    """A split as one tensor; ``__getitems__`` returns a whole batch ``(x, y)``."""

    def __init__(self, split: Split, binarize: bool = False) -> None:
        self.x, self.y, self.binarize = split.x, split.y, binarize

    def __len__(self) -> int:
        return self.x.shape[0]

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor | None]:
        x, y = self.__getitems__([i])
        return x[0], None if y is None else y[0]

    def __getitems__(self, indices: list[int]) -> tuple[Tensor, Tensor | None]:
        idx = torch.as_tensor(indices, device=self.x.device)
        x = self.x[idx]
        if self.binarize:  # dynamic binarization: a fresh draw at every use
            x = torch.bernoulli(x)
        return x, None if self.y is None else self.y[idx]

    def to(self, device: torch.device) -> TensorData:
        self.x = self.x.to(device)
        self.y = None if self.y is None else self.y.to(device)
        return self


def _as_batch(batch: tuple[Tensor, Tensor | None]) -> tuple[Tensor, Tensor | None]:
    return batch  # __getitems__ already made the batch


class TensorDataModule(L.LightningDataModule):
    def __init__(self, dataset: Dataset, batch_size: int, eval_batch_size: int) -> None:
        super().__init__()
        self.dataset = dataset
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.train = TensorData(dataset.train, binarize=dataset.spec.binarize)
        self.val = TensorData(dataset.val)

    def setup(self, stage: str | None = None) -> None:
        trainer = self.trainer
        if trainer is None:
            return
        device = trainer.strategy.root_device
        size = sum(t.x.element_size() * t.x.numel() for t in (self.train, self.val))
        if device.type != "cpu" and size <= MAX_DEVICE_BYTES:
            self.train.to(device)
            self.val.to(device)

    def _loader(self, data: TensorData, batch_size: int, shuffle: bool) -> DataLoader:
        return DataLoader(data, batch_size=batch_size, shuffle=shuffle, collate_fn=_as_batch)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train, self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val, self.eval_batch_size, shuffle=False)
