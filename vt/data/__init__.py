"""Datasets and LightningDataModules shared by classification and segmentation.

Every datamodule yields dict batches (see `vt.data.base`) and takes a plain, typed constructor, so
``--data synthetic --data.batch_size 8`` works from the command line. Nothing downloads: the
synthetic set is generated, the real ones read an existing ``root``.
"""

from vt.data.base import IGNORE_INDEX, BadSampleError, DatasetError, VTDataModule, VTDataset
from vt.data.coco_stuff import COCOStuffDataModule
from vt.data.imagenet import ImageNetDataModule
from vt.data.lip import LIPDataModule
from vt.data.synthetic import SHAPES, SyntheticDataModule, SyntheticShapes

DATAMODULES: dict[str, type[VTDataModule]] = {
    "synthetic": SyntheticDataModule,
    "imagenet": ImageNetDataModule,
    "lip": LIPDataModule,
    "cocostuff": COCOStuffDataModule,
}

__all__ = [
    "DATAMODULES",
    "IGNORE_INDEX",
    "SHAPES",
    "BadSampleError",
    "COCOStuffDataModule",
    "DatasetError",
    "ImageNetDataModule",
    "LIPDataModule",
    "SyntheticDataModule",
    "SyntheticShapes",
    "VTDataModule",
    "VTDataset",
]
