"""A growing vocabulary: tomorrow's build keeps yesterday's tokens and adds the new ones (warm starts).

`build(..., base_vocabulary=BaseVocabulary(...))` makes each field's vocabulary from a base vocabulary (the one a
trained model's table rows belong to) and the new data's counts, by one documented rule:

1. **Base tokens are kept, in their base order**, so their ids stay what they were (unless tokens before them are
   evicted). A base token is *active* in a build when it reaches the field's `min_count` in that build's data; its
   *age* (`vocab_ages/<column>.npy`, int32 per token in vocabulary order) counts the consecutive builds it was
   inactive in (0 when active).
2. **Eviction** (off by default): with `evict_after=N`, a base token inactive in more than N consecutive builds (age
   > N after this build) is dropped; its trained row is not carried over.
3. **New tokens** (reaching `min_count`, not in the base) are appended in the schema's vocabulary order (frequency,
   or sorted), at most `max_new_tokens` per field and at most up to the field's `max_tokens` in total (base tokens
   are never dropped for the cap). `max_new_tokens=0` freezes the vocabulary: new tokens are OOV.

Nothing is dropped silently: per field, the counts of base, kept (active / inactive), evicted, added and capped
tokens are the build's `vocabulary_growth` record (manifest and `PreparedData.vocabulary_growth`), also logged.
Hash-bucket fields have no vocabulary and are unchanged. Without a base vocabulary the build is what it always was
(same vocabularies, same cache key).
"""

import dataclasses
import hashlib
import logging
import pathlib
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from tf_multiembed.data import schema as schema_lib
from tf_multiembed.data import vocabulary as vocabulary_lib

AGES_DIR_NAME = "vocab_ages"
AGES_SUFFIX = ".npy"

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class BaseVocabulary:
    """The vocabulary a build grows from (see the module docstring).

    Attributes:
        vocab_dir: the folder of `<column>.txt` vocabulary files (a prepared folder's `vocab/` or an export's
            `assets/`).
        ages_dir: the folder of `<column>.npy` inactivity ages, or None (every base token counts as just seen).
        evict_after: evict base tokens inactive in more than this many consecutive builds; None keeps them all.
        max_new_tokens: at most this many new tokens per field; None for no cap; 0 freezes the vocabulary.
        source: where the base comes from (a run directory or an export), for the record.
    """

    vocab_dir: pathlib.Path
    ages_dir: Optional[pathlib.Path] = None
    evict_after: Optional[int] = None
    max_new_tokens: Optional[int] = None
    source: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "vocab_dir", pathlib.Path(self.vocab_dir))
        if self.ages_dir is not None:
            object.__setattr__(self, "ages_dir", pathlib.Path(self.ages_dir))
        for name in ("evict_after", "max_new_tokens"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise ValueError(f"BaseVocabulary: `{name}` must be a non-negative integer or None, got {value!r}.")

    def tokens(self, column: str) -> List[str]:
        """The base tokens of an encoded column, in id order (id = position + 1)."""
        return vocabulary_lib.read_vocabulary(vocabulary_lib.vocabulary_path(self.vocab_dir, column))

    def ages(self, column: str, num_tokens: int) -> np.ndarray:
        """The base tokens' inactivity ages (zeros when none were recorded)."""
        path = None if self.ages_dir is None else self.ages_dir / f"{column}{AGES_SUFFIX}"
        if path is None or not path.is_file():
            return np.zeros(num_tokens, dtype=np.int32)
        ages = np.load(path)
        if ages.shape != (num_tokens,):
            raise ValueError(f"{path}: {ages.shape[0]} ages for the {num_tokens} tokens of "
                             f"{vocabulary_lib.vocabulary_path(self.vocab_dir, column)}; the two files do not belong "
                             "together.")
        return ages.astype(np.int32)

    def cache_key_part(self, schema: schema_lib.Schema) -> Dict[str, Any]:
        """What of the base changes the build (a digest of its vocabularies and ages, and the rule's settings)."""
        digest = hashlib.sha256()
        for field in schema.fields:
            if field.hash_buckets is not None:
                continue
            column = field.output_names[0]
            for path in (vocabulary_lib.vocabulary_path(self.vocab_dir, column),
                         None if self.ages_dir is None else self.ages_dir / f"{column}{AGES_SUFFIX}"):
                if path is not None and path.is_file():
                    digest.update(path.name.encode("utf-8") + b"\0" + path.read_bytes())
        return {"vocabularies": digest.hexdigest(), "evict_after": self.evict_after,
                "max_new_tokens": self.max_new_tokens}


def grow_vocabulary(base_tokens: Sequence[str], base_ages: np.ndarray, counts: Mapping[str, int],
                    order: str = schema_lib.FREQUENCY_ORDER, max_tokens: Optional[int] = None,
                    evict_after: Optional[int] = None, max_new_tokens: Optional[int] = None
                    ) -> Tuple[List[str], np.ndarray, Dict[str, int]]:
    """One field's grown vocabulary: (tokens in id order, their ages, counts of what happened).

    Args:
        base_tokens: the base vocabulary in id order.
        base_ages: their inactivity ages before this build.
        counts: this build's tokens that reach the field's min_count, with their counts.
        order: the schema's vocabulary order, for the new tokens.
        max_tokens: the field's cap on its whole vocabulary (base tokens are kept over it; new ones are not added).
        evict_after: see `BaseVocabulary`.
        max_new_tokens: see `BaseVocabulary`.

    Example:
        >>> tokens, ages, stats = grow_vocabulary(["a", "b"], np.array([0, 2]), {"c": 3, "a": 5}, evict_after=2)
        >>> tokens, ages.tolist(), stats["evicted"], stats["added"]
        (['a', 'c'], [0, 0], 1, 1)
    """
    active = np.fromiter((token in counts for token in base_tokens), dtype=bool, count=len(base_tokens))
    ages = np.where(active, 0, np.asarray(base_ages, dtype=np.int32) + 1).astype(np.int32)
    keep = np.ones(len(base_tokens), dtype=bool) if evict_after is None else ages <= evict_after
    kept = [token for token, kept_it in zip(base_tokens, keep) if kept_it]
    known = set(base_tokens)
    new = vocabulary_lib.build_vocabulary({token: count for token, count in counts.items() if token not in known},
                                          min_count=1, order=schema_lib.FREQUENCY_ORDER)  # most frequent first
    room = len(new)
    if max_new_tokens is not None:
        room = min(room, max_new_tokens)
    if max_tokens is not None:
        room = min(room, max(0, max_tokens - len(kept)))
    added = new[:room]
    if order == schema_lib.SORTED_ORDER:
        added = sorted(added)
    stats = {"base": len(base_tokens), "kept_active": int(np.sum(active & keep)),
             "kept_inactive": int(np.sum(~active & keep)), "evicted": int(np.sum(~keep)), "added": len(added),
             "new_dropped_by_cap": len(new) - len(added), "tokens": len(kept) + len(added)}
    return kept + added, np.concatenate([ages[keep], np.zeros(len(added), np.int32)]), stats


def grow_schema_vocabularies(schema: schema_lib.Schema, counts: Mapping[str, Mapping[str, int]],
                             base: BaseVocabulary) -> Tuple[Dict[str, List[str]], Dict[str, np.ndarray],
                                                            Dict[str, Any]]:
    """({field: tokens}, {field: ages}, the `vocabulary_growth` record) for every field with a vocabulary."""
    vocabularies, ages, fields = {}, {}, {}
    for field in schema.fields:
        if field.hash_buckets is not None:
            continue
        base_tokens = base.tokens(field.output_names[0])
        vocabularies[field.name], ages[field.name], fields[field.name] = grow_vocabulary(
            base_tokens, base.ages(field.output_names[0], len(base_tokens)), counts[field.name],
            schema.vocabulary_order, field.max_tokens, base.evict_after, base.max_new_tokens)
    totals = {key: sum(stats[key] for stats in fields.values())
              for key in ("base", "kept_active", "kept_inactive", "evicted", "added", "new_dropped_by_cap")}
    logger.info("vocabulary grown from %s: %s", base.source or base.vocab_dir, totals)
    record = {"source": base.source or str(base.vocab_dir), "evict_after": base.evict_after,
              "max_new_tokens": base.max_new_tokens, "totals": totals, "fields": fields}
    return vocabularies, ages, record


def write_ages(schema: schema_lib.Schema, ages: Mapping[str, np.ndarray], folder: Any) -> None:
    """Writes `<folder>/vocab_ages/<column>.npy` for every encoded column of a field with a vocabulary."""
    directory = pathlib.Path(folder) / AGES_DIR_NAME
    directory.mkdir(parents=True, exist_ok=True)
    for field in schema.fields:
        if field.name in ages:
            for column in field.output_names:
                np.save(directory / f"{column}{AGES_SUFFIX}", np.asarray(ages[field.name], dtype=np.int32))
