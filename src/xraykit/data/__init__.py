"""Where X-rays come from: image files, folder trees, ``.npz`` files and the synthetic generator."""
