"""Learning vector quantization classifiers (Nova & Estévez 2014): LVQ1, GLVQ and GMLVQ trained in torch.

``prototypes`` (the classifier, its three trainers and their registry), ``features`` (the input
representations: a PCA projection of the pixels, LeNet-5's penultimate features), ``reference``
(the independent implementation, PyPI ``unilvq``, for the cross-check).

May import: ``model.contract``, ``model.nets`` (the data and the zoo's LeNet-5).
"""
