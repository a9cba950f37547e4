from ._dataset import Dataset as Dataset
from .registry import DATASETS as DATASETS, load_dataset as load_dataset
