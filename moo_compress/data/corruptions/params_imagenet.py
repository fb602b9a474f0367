"""The ImageNet-C parameter table (224-pixel images), in the format of :mod:`.params`.

The values are those of ``make_imagenet_c.py`` (Hendrycks & Dietterich, ICLR 2019; hendrycks/robustness,
``ImageNet-C/create_c``; the ``imagenet_c`` package of the same repository has the same numbers), which
corrupts ImageNet validation images resized to 256 and centre-cropped to 224. The algorithms are the
CIFAR ones; only the numbers differ, plus the size-dependent settings of the recipe: frost textures are
used at their own size (no resize) before the 224 x 224 crop, fog's plasma fractal is 256 x 256 (the
next power of two) cropped to 224, and elastic_transform's parameters are multiples of 244 (the
reference's comment: "244 should have been 224, but ultimately nothing is incorrect"; kept as written).

The ``imagecorruptions`` package (PyPI) uses the same numbers for 17 corruptions but differs in three
algorithms: its elastic_transform has no affine step and other parameters, its pixelate enlarges with
NEAREST instead of BOX, and its frost rescales the textures by 1.1. This table follows ``make_imagenet_c.py``.

=================  ========  ==============================================================================
corruption         family    parameters for severities 1..5
=================  ========  ==============================================================================
gaussian_noise     noise     std c: .08, .12, .18, .26, .38
shot_noise         noise     photons c: 60, 25, 12, 5, 3  (Poisson(x c) / c)
impulse_noise      noise     amount c: .03, .06, .09, .17, .27  (fraction of values set to 0 or 1)
defocus_blur       blur      (disk radius, alias sigma): (3,.1), (4,.5), (6,.5), (8,.5), (10,.5)
glass_blur         blur      (sigma, delta, iterations): (.7,1,2), (.9,2,1), (1,2,3), (1.1,3,2), (1.5,4,2)
motion_blur        blur      (radius, sigma): (10,3), (15,5), (15,8), (15,12), (20,15); angle ~ U[-45, 45]
zoom_blur          blur      zoom factors np.arange(1, stop, step): (1.11,.01), (1.16,.01), (1.21,.02),
                             (1.26,.02), (1.31,.03)
snow               weather   (loc, scale, zoom, threshold, radius, sigma, blend), see ``SPECS``
frost              weather   (a, b): (1,.4), (.8,.6), (.7,.7), (.65,.7), (.6,.75)  (a x + b frost, 0..255)
fog                weather   (strength, wibble decay): (1.5,2), (2,2), (2.5,1.7), (2.5,1.5), (3,1.4)
brightness         weather   V += c: .1, .2, .3, .4, .5  (HSV)
contrast           digital   c: .4, .3, .2, .1, .05  ((x - mean) c + mean)
elastic_transform  digital   244 x (alpha, sigma, affine): (2,.7,.1), (2,.08,.2), (.05,.01,.02),
                             (.07,.01,.02), (.12,.01,.02)
pixelate           digital   c: .6, .5, .4, .3, .25  (BOX resize to int(224 c) and back)
jpeg_compression   digital   quality: 25, 18, 15, 10, 7
speckle_noise      noise     c: .15, .2, .35, .45, .6  (x + x N(0, c)); extra
gaussian_blur      blur      sigma: 1, 2, 3, 4, 6; extra
spatter            weather   (loc, scale, sigma, threshold, intensity, mode), see ``SPECS``; extra
saturate           digital   (a, b): (.3,0), (.1,0), (2,0), (5,.1), (20,.2)  (S = S a + b); extra
=================  ========  ==============================================================================

Some sequences do not strengthen monotonically: elastic_transform's first two severities smooth the
displacement over most of the image (sigma 171 and 20 pixels) and jitter the affine most, and saturate's
factor goes .3, .1, 2, 5, 20.
"""

from __future__ import annotations

from moo_compress.data.corruptions.params import CorruptionSpec, respecify

__all__ = ["SIZE", "FROST_SCALE", "SPECS"]

#: The image size the recipe is written for.
SIZE = 224
#: Frost textures are used at their own size.
FROST_SCALE = 1.0

_E = 244  # the reference's elastic_transform multiplier (see the module docstring)

SPECS: tuple[CorruptionSpec, ...] = respecify({
    "gaussian_noise": (0.08, 0.12, 0.18, 0.26, 0.38),
    "shot_noise": (60, 25, 12, 5, 3),
    "impulse_noise": (0.03, 0.06, 0.09, 0.17, 0.27),
    "defocus_blur": ((3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)),
    "glass_blur": ((0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2)),
    "motion_blur": ((10, 3), (15, 5), (15, 8), (15, 12), (20, 15)),
    "zoom_blur": ((1, 1.11, 0.01), (1, 1.16, 0.01), (1, 1.21, 0.02), (1, 1.26, 0.02), (1, 1.31, 0.03)),
    "snow": ((0.1, 0.3, 3, 0.5, 10, 4, 0.8),
             (0.2, 0.3, 2, 0.5, 12, 4, 0.7),
             (0.55, 0.3, 4, 0.9, 12, 8, 0.7),
             (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65),
             (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55)),
    "frost": ((1, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75)),
    "fog": ((1.5, 2), (2, 2), (2.5, 1.7), (2.5, 1.5), (3, 1.4)),
    "brightness": (0.1, 0.2, 0.3, 0.4, 0.5),
    "contrast": (0.4, 0.3, 0.2, 0.1, 0.05),
    "elastic_transform": ((_E * 2, _E * 0.7, _E * 0.1),
                          (_E * 2, _E * 0.08, _E * 0.2),
                          (_E * 0.05, _E * 0.01, _E * 0.02),
                          (_E * 0.07, _E * 0.01, _E * 0.02),
                          (_E * 0.12, _E * 0.01, _E * 0.02)),
    "pixelate": (0.6, 0.5, 0.4, 0.3, 0.25),
    "jpeg_compression": (25, 18, 15, 10, 7),
    "speckle_noise": (0.15, 0.2, 0.35, 0.45, 0.6),
    "gaussian_blur": (1, 2, 3, 4, 6),
    "spatter": ((0.65, 0.3, 4, 0.69, 0.6, 0),
                (0.65, 0.3, 3, 0.68, 0.6, 0),
                (0.65, 0.3, 2, 0.68, 0.5, 0),
                (0.65, 0.3, 1, 0.65, 1.5, 1),
                (0.67, 0.4, 1, 0.65, 1.5, 1)),
    "saturate": ((0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (20, 0.2)),
})
