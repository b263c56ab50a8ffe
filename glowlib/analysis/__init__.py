"""Everything the paper-figure notebooks compute from a trained model (Kingma & Dhariwal 2018, Sec. 5).

* ``sampling``: samples at a temperature T (Sec. 5, Fig. 8), and the model helpers every measure shares.
* ``images``: the image conversions that show them (uint8 at a bit depth, grids).
* ``latent``: latent interpolation between real images (Sec. 5, Fig. 5), with the exact-reconstruction check, and
  semantic manipulation (Sec. 5, Fig. 6) along the direction mean z(with attribute) − mean z(without).
* ``attributes``: attributes measured from the images themselves (stroke thickness, slant).
* ``classifier`` and ``quality``: objective sample-quality measures the paper does not have: a small CNN trained
  on the *real* training images gives confidence, the entropy of the predicted-class histogram (diversity), and a
  Fréchet distance between its features of samples and of real images (the FID formula with our classifier in
  place of Inception), precision and recall in its features, plus nearest neighbours for the memorisation check.
* ``judging``: class-balanced random reference sets, the real-vs-real baseline, the sanity gates every
  sample-judging study checks before a verdict, and decisions over sampling seeds.
"""
from .attributes import measure_attributes, slant, stroke_thickness
from .classifier import Classifier, ClassifierSettings, cached_classifier, classifier_path
from .images import check_images, check_temperature, image_grid, reduce_bits, to_uint8
from .presentation import beside_paper, csv_link, interval, paper_line, readable, scale_words, show
from .latent import attribute_direction, interpolate, manipulate
from .judging import REAL_VS_REAL, check_gates, failed_gates_of, real_halves, reference_set
from .quality import (PR_NEIGHBOURS, SPACES, frechet_distance, nearest_neighbours, precision_recall, sample_quality,
                      temperature_samples_table)
from .sampling import MAX_REDRAWS, bin_centres, encode_batches, eval_mode, exact_model, first_parameter, samples

__all__ = ["measure_attributes", "slant", "stroke_thickness", "Classifier", "ClassifierSettings", "cached_classifier",
           "classifier_path", "check_images", "check_temperature", "image_grid", "reduce_bits", "to_uint8",
           "attribute_direction", "interpolate", "manipulate", "REAL_VS_REAL", "check_gates", "failed_gates_of",
           "real_halves", "reference_set", "PR_NEIGHBOURS", "SPACES", "frechet_distance", "nearest_neighbours",
           "precision_recall", "sample_quality", "temperature_samples_table", "MAX_REDRAWS", "bin_centres",
           "encode_batches", "eval_mode", "exact_model", "first_parameter", "samples"]
__all__ += ["beside_paper", "csv_link", "interval", "paper_line", "readable", "scale_words", "show"]
