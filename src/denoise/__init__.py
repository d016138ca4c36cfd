"""Image denoising with convolutional networks: the library behind the DVC stages and the `denoise` command."""

__version__ = "0.1.0"
