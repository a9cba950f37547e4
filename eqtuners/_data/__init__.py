from ._dataset import Dataset as Dataset
from ._locate import DatasetNotFoundError as DatasetNotFoundError
from ._prepare import balanced_subset as balanced_subset
from .cifar10 import (
    load_cifar10 as load_cifar10,
    read_cifar10_binary as read_cifar10_binary,
)
from .fashion_mnist import (
    load_fashion_mnist as load_fashion_mnist,
    read_fashion_mnist_idx as read_fashion_mnist_idx,
)
from .idx import read_idx as read_idx
from .registry import DATASETS as DATASETS, load_dataset as load_dataset
from .synthetic import load_synthetic_cifar10 as load_synthetic_cifar10
