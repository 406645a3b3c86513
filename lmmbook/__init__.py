"""lmmbook: linear mixed models, BLUP and genomic prediction, as derived in the lmmbook book.

Each public name mirrors a symbol or a step of the book; the chapter and equation it implements are
cited in its docstring.
"""

from . import (
    chunked,  # streamed genotypes: lmmbook.chunked.frequencies(...)
    datasets,  # lmmbook.datasets.mice() after a plain `import lmmbook`
)
from .crossval import CVResult, cross_validate, forward_split, kfold
from .design import Incidence, fixed_design, incidence
from .errors import (
    ConvergenceError,
    DuplicateIdError,
    FileFormatError,
    InputError,
    LmmbookError,
    LmmbookWarning,
    NonFiniteError,
    NotPositiveDefiniteError,
    PedigreeError,
    RankDeficientError,
    ShapeMismatchError,
    UnknownIdError,
    VarianceError,
)
from .genomic import GBLUPResult, gblup, genomic_relationship
from .gwas import GWASResult, gwas
from .haseman_elston import HEResult, he_regression
from .lrmethod import LRResult, lr_validation
from .markers import allele_frequencies, filter_markers
from .mme import MMEResult, solve_mme
from .pedigree import Pedigree
from .plots import genomic_inflation, manhattan_plot, qq_plot
from .qc import SampleQC, sample_qc
from .readers import GenotypeData, PlinkChunks, read_genotype_text, read_plink
from .reml import REMLResult, reml
from .simulate import VarietyTrial, simulate_pedigree, simulate_variety_trial
from .simulate_genomes import Population, simulate_population
from .simulate_records import LivestockData, simulate_livestock
from .singlestep import (
    APYInverse,
    H_inverse,
    SSGBLUPResult,
    TunedG,
    apy_inverse,
    ssgblup,
    tune_genomic,
)
from .snpblup import SNPBLUPResult, backsolve_snp_effects, snp_blup
from .validation import (
    FoldEstimate,
    compare_folds,
    effective_segments,
    expected_accuracy,
    fold_se,
)
from .vcf import read_vcf
from .weighted import WeightedGBLUPResult, weighted_gblup

__version__ = "0.6.0"

__all__ = [
    "datasets",
    "chunked",
    "APYInverse",
    "H_inverse",
    "SSGBLUPResult",
    "TunedG",
    "apy_inverse",
    "ssgblup",
    "tune_genomic",
    "LmmbookWarning",
    "CVResult",
    "ConvergenceError",
    "DuplicateIdError",
    "FileFormatError",
    "FoldEstimate",
    "GBLUPResult",
    "GWASResult",
    "HEResult",
    "GenotypeData",
    "Incidence",
    "InputError",
    "LRResult",
    "LivestockData",
    "LmmbookError",
    "MMEResult",
    "NonFiniteError",
    "NotPositiveDefiniteError",
    "Pedigree",
    "PlinkChunks",
    "Population",
    "PedigreeError",
    "RankDeficientError",
    "SNPBLUPResult",
    "SampleQC",
    "REMLResult",
    "ShapeMismatchError",
    "UnknownIdError",
    "VarianceError",
    "VarietyTrial",
    "WeightedGBLUPResult",
    "allele_frequencies",
    "backsolve_snp_effects",
    "compare_folds",
    "cross_validate",
    "effective_segments",
    "expected_accuracy",
    "fixed_design",
    "filter_markers",
    "fold_se",
    "forward_split",
    "gblup",
    "genomic_inflation",
    "genomic_relationship",
    "gwas",
    "he_regression",
    "incidence",
    "kfold",
    "lr_validation",
    "manhattan_plot",
    "qq_plot",
    "read_genotype_text",
    "read_plink",
    "read_vcf",
    "reml",
    "sample_qc",
    "simulate_livestock",
    "simulate_pedigree",
    "simulate_population",
    "simulate_variety_trial",
    "snp_blup",
    "solve_mme",
    "weighted_gblup",
]
