import lmmbook
from lmmbook import errors


def test_one_hierarchy():
    for name in errors.__all__:
        cls = getattr(errors, name)
        if cls is errors.LmmbookWarning:  # a warning, not an error: what lmmbook did not refuse
            assert issubclass(cls, UserWarning) and not issubclass(cls, errors.LmmbookError)
            continue
        assert issubclass(cls, errors.LmmbookError)
        if cls is errors.ConvergenceError:
            assert issubclass(cls, RuntimeError)  # not an input error: the input was valid
        elif cls is not errors.LmmbookError:
            assert issubclass(cls, ValueError)
    assert issubclass(errors.UnknownIdError, LookupError)


def test_public_errors_reexported():
    for name in ["LmmbookError", "InputError", "UnknownIdError", "DuplicateIdError"]:
        assert getattr(lmmbook, name) is getattr(errors, name)


def test_format_ids_limits():
    assert errors.format_ids(["a"]) == "'a'"
    assert errors.format_ids(range(7), limit=2) == "0, 1 and 5 more"
