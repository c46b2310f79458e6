"""Sensitive (protected) attributes: found by the words of a column's name, abbreviations and
0/1 flags for one group included, and by its values (sex, gender, race or ethnicity
categories), each with the reason it was flagged."""

from __future__ import annotations

import re
from collections.abc import Iterable

from mlplan.data._columns import name_words

__all__ = ["sensitive_reason"]

# Words of a name, each standing for a kind of protected attribute. A name is sensitive when
# every one of its words (less the prefixes and suffixes below) is such a word: `race`,
# `race_ethnicity`, `is_hispanic`, `applicant_sex`, `marital_status`, `gndr`.
_WORDS: dict[str, frozenset[str]] = {
    kind: frozenset(words.split())
    for kind, words in {
        "sex or gender": "sex gender gndr female male woman women sexe",
        "race or ethnicity": "race racial ethnicity ethnicities ethnic ethnicgroup raceeth "
        "black white asian hispanic hisp latino latina latinx caucasian nonwhite non_white "
        "eth ethn nhw nhb "
        "minority indigenous aboriginal african_american native_american pacific_islander",
        "religion": "religion religious faith relig",
        "nationality or origin": "nationality national_origin citizenship citizen immigrant "
        "immigration foreign_born native_born country_of_birth birth_country birthplace",
        "marital status": "marital married mstatus maritalstatus",
        "disability": "disability disabled disab handicap handicapped",
        "sexual orientation": "sexual_orientation lgbt lgbtq",
        "pregnancy": "pregnant pregnancy maternity",
        "veteran status": "veteran vet_status",
        "caste": "caste",
    }.items()
}
# Words around the attribute that do not change what it is: `is_female`, `ethnic_group`,
# `sex_code`, `applicant_race`, `gender_identity`.
# fmt: off
_PREFIXES = frozenset(
    {
        "is", "has", "flag", "applicant", "applicants", "co", "patient", "customer",
        "client", "person", "member", "borrower", "employee", "respondent", "resp",
        "subject", "user", "driver", "student", "victim", "defendant", "head", "hh",
        "self", "reported"
    }
)
_SUFFIXES = frozenset(
    {
        "group", "grp", "groups", "band", "bracket", "cat", "category", "categories",
        "code", "cd", "status", "stat", "flag", "ind", "indicator", "yn", "identity",
        "type", "desc", "description", "label", "name", "bin", "binary", "dummy",
        "affiliation", "origin", "background"
    }
)
# fmt: on
# Age is the first word (`age`, `age_group`, `age_at_admission`, `agegrp`) or follows a
# person (`patient_age`): `account_age` and `vehicle_age` are not a person's age.
_AGE = re.compile(r"^(age|ages|agegrp|agegroup|ageband|agecat)$")
_AGE_AFTER = frozenset({"years", "yrs", "yr", "at", "in", "range", "when"})
# A date or year of birth is age by another name: `dob`, `dob_year`, `birth_year`, `yob`.
_BIRTH = frozenset({"dob", "yob", "birthyear", "birthdate", "birthday", "dateofbirth"})
_BIRTH_AFTER = frozenset({"year", "yr", "date", "month"})
_BIRTH_TERMS = ("birth_year", "birth_date", "year_of_birth", "date_of_birth")


def _joined(words: list[str]) -> list[str]:
    """The words with known two- and three-word terms joined (``national_origin``)."""
    terms = {t for group in _WORDS.values() for t in group if "_" in t}
    out: list[str] = []
    i = 0
    while i < len(words):
        for size in (3, 2):
            term = "_".join(words[i : i + size])
            if len(words) - i >= size and term in terms:
                out.append(term)
                i += size
                break
        else:
            out.append(words[i])
            i += 1
    return out


# Words that stand for a kind by their beginning: `disab_flag`, `religious_affiliation`.
_STEMS: dict[str, tuple[str, ...]] = {
    "race or ethnicity": ("ethnic",),
    "religion": ("relig",),
    "nationality or origin": ("nationalit",),
    "disability": ("disab", "handicap"),
    "pregnancy": ("pregnan",),
}


def _kind(word: str) -> str | None:
    """The kind of protected attribute one word of a name stands for, if any."""
    for kind, group in _WORDS.items():
        if word in group or word.startswith(_STEMS.get(kind, ("\0",))):
            return kind
    return None


def _by_name(name: str) -> str | None:
    """What kind of protected attribute the name says, if any."""
    words = _joined(name_words(name))
    while len(words) > 1 and words[0] in _PREFIXES:
        words = words[1:]
    if not words:
        return None
    if _AGE.match(words[0]) and (len(words) == 1 or words[1] in _SUFFIXES | _AGE_AFTER):
        return "age"
    birth = words[0] in _BIRTH and (len(words) == 1 or words[1] in _SUFFIXES | _BIRTH_AFTER)
    if birth or "_".join(words[:3]).startswith(_BIRTH_TERMS):
        return "age (a date or year of birth)"
    while len(words) > 1 and words[-1] in _SUFFIXES:
        words = words[:-1]
    kinds = [_kind(w) for w in words]
    if None in kinds:
        return None
    # One kind (`race_ethnicity`), or a combination of them (`race_sex`).
    return ", ".join(dict.fromkeys(k for k in kinds if k is not None))


# Values: a column is a sex or gender, or a race or ethnicity, when its distinct values are
# (nearly) all categories of one, and at least two of them name a group.
# fmt: off
_SEX_VALUES = frozenset(
    {
        "m", "f", "male", "female", "man", "woman", "men", "women", "boy", "girl", "males",
        "females", "mann", "frau", "homme", "femme"
    }
)
_RACE_VALUES = frozenset(
    {
        "white", "black", "asian", "hispanic", "latino", "latina", "latinx", "caucasian",
        "aboriginal", "indigenous", "maori", "arab", "multiracial", "mixed", "biracial",
        "nonwhite", "non white", "african american", "black or african american",
        "afro american", "native american", "american indian",
        "american indian or alaska native", "alaska native", "amer indian eskimo",
        "asian pac islander", "pacific islander", "native hawaiian",
        "native hawaiian or other pacific islander", "hispanic or latino",
        "not hispanic or latino", "non hispanic", "non hispanic white", "non hispanic black",
        "white non hispanic", "black non hispanic", "first nations", "middle eastern",
        "south asian", "east asian", "mixed race", "two or more races",
    }
)
# Values that may stand beside the categories of either without telling against them.
_NEUTRAL_VALUES = frozenset(
    {
        "other", "unknown", "x", "u", "na", "n a", "none", "not stated", "prefer not to say",
        "declined", "refused", "missing", "diverse", "non binary", "nonbinary", "intersex",
        "another", "multiple", "",
    }
)
# fmt: on
_MAX_VALUES = 20


def _normal(value: object) -> str:
    return " ".join(re.split(r"[^a-z0-9]+", str(value).lower())).strip()


def _by_values(values: Iterable[object]) -> str | None:
    """Which kind of protected attribute the distinct ``values`` are categories of, if any."""
    distinct = {_normal(v) for v in values}
    if not 2 <= len(distinct) <= _MAX_VALUES:
        return None
    for kind, known in (("sex or gender", _SEX_VALUES), ("race or ethnicity", _RACE_VALUES)):
        groups = distinct & known
        if len(groups) >= 2 and distinct <= known | _NEUTRAL_VALUES:
            return kind
    return None


def sensitive_reason(name: str, values: Iterable[object] = ()) -> str | None:
    """Why column ``name`` looks like a protected attribute, by its name or its distinct
    ``values`` (a column's few values; pass none for a column with many), if it does.

    Examples
    --------
    >>> sensitive_reason("gndr"), sensitive_reason("is_hispanic"), sensitive_reason("age_group")
    ('name suggests sex or gender', 'name suggests race or ethnicity', 'name suggests age')
    >>> sensitive_reason("colour", ["Black", "White"]), sensitive_reason("colour", ["red", "blue"])
    ('values are race or ethnicity categories (Black, White)', None)
    >>> sensitive_reason("vehicle_age"), sensitive_reason("usage")
    (None, None)
    """
    kind = _by_name(name)
    if kind is not None:
        return f"name suggests {kind}"
    values = [v for v in values if v is not None]
    kind = _by_values(values)
    if kind is None:
        return None
    shown = sorted({str(v) for v in values})
    listed = ", ".join(shown[:4]) + (", ..." if len(shown) > 4 else "")
    return f"values are {kind} categories ({listed})"
