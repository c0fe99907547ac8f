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


class CropData(TensorData):
    """Audio: utterances ``[N, L]`` (padded, with their ``lengths``) served as crops of
    ``crop`` samples, one per utterance, gathered in one indexing op.

    Training crops start anywhere in their utterance (a fresh draw at every use, WaveNet's
    random crops); validation crops are the fixed middle of each utterance, so the number that
    picks the best epoch does not move with the draw. An utterance shorter than a crop is read
    from its start, with the silence it was padded with after its end.
    """

    def __init__(self, split: Split, crop: int, random: bool, silence: float) -> None:
        super().__init__(split)
        if split.lengths is None:
            raise ValueError("audio splits carry the length of each utterance")
        self.lengths, self.crop, self.random = split.lengths, crop, random
        if self.x.shape[1] < crop:  # every utterance is shorter than a crop: pad the tensor
            self.x = torch.nn.functional.pad(
                self.x,
                (0, crop - self.x.shape[1]),
                value=silence,
            )

    def __getitems__(self, indices: list[int]) -> tuple[Tensor, Tensor | None]:
        idx = torch.as_tensor(indices, device=self.x.device)
        room = (self.lengths[idx] - self.crop).clamp(min=0)  # [B] last possible start
        if self.random:
            start = (torch.rand(len(indices), device=self.x.device) * (room + 1)).long()
        else:
            start = room // 2
        cols = start[:, None] + torch.arange(self.crop, device=self.x.device)  # [B, crop]
        x = self.x[idx[:, None], cols]
        return x, None if self.y is None else self.y[idx]

    def to(self, device: torch.device) -> CropData:
        super().to(device)
        self.lengths = self.lengths.to(device)
        return self


def _as_batch(batch: tuple[Tensor, Tensor | None]) -> tuple[Tensor, Tensor | None]:
    return batch  # __getitems__ already made the batch


class TensorDataModule(L.LightningDataModule):
    def __init__(self, dataset: Dataset, batch_size: int, eval_batch_size: int) -> None:
        super().__init__()
        self.dataset = dataset
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        spec = dataset.spec
        if spec.is_audio:  # crops of the spec's length from whole utterances
            from dgm.data.audio import silence_level

            quiet = float(silence_level(spec.encoding or "mulaw", spec.levels or 256))
            self.train: TensorData = CropData(dataset.train, spec.shape[0], True, quiet)
            self.val: TensorData = CropData(dataset.val, spec.shape[0], False, quiet)
        else:
            self.train = TensorData(dataset.train, binarize=spec.binarize)
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
