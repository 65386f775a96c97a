"""The art classifier's data and model (issue 7): WikiArt-layout datasets, a procedural synthetic art set,
and a torchvision backbone with artist / style / genre heads."""
