"""Turn what the user passed (an image, a folder, or a list file) into the inputs of a run.

Each input carries ``rel``, its path relative to the input root, so every stage can mirror the
input layout in its output folder and two inputs never write to the same place.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from uvaug.io.images import IMAGE_EXTENSIONS

__all__ = ["InputError", "InputItem", "artifact_stems", "discover_inputs", "iter_inputs"]


@dataclass(frozen=True)
class InputItem:
    """One input image: where to read it, and where it sits relative to the input root."""

    path: Path
    rel: PurePosixPath


class InputError(Exception):
    """The input argument itself is unusable (missing, unreadable, ambiguous); one-line message."""


def discover_inputs(
    source: str | os.PathLike[str], exclude: Sequence[str | os.PathLike[str]] = ()
) -> list[InputItem]:
    """List the inputs named by ``source``.

    * an image file (by extension): that one image, ``rel`` = its file name;
    * a folder: every image below it, sorted by ``rel``; hidden entries are skipped, symlinked
      folders are not followed (no loops), and folders in ``exclude`` (e.g. an output folder
      inside the input folder) are pruned, as is everything if ``source`` itself is inside one;
    * any other file: a list of paths, one per line (see :func:`_read_list`).
    """
    src = Path(source)
    if src.is_dir():
        return _walk_folder(src, exclude)
    if not src.exists():
        raise InputError(f"input not found: {os.fspath(source)}")
    if not src.is_file():
        raise InputError(f"input is neither a file nor a folder: {os.fspath(source)}")
    if src.suffix.lower() in IMAGE_EXTENSIONS:
        return [InputItem(src, PurePosixPath(src.name))]
    return _read_list(src)


def _real(path: str | os.PathLike[str]) -> str:
    return os.path.normcase(os.path.realpath(path))


def iter_inputs(
    source: str | os.PathLike[str],
    exclude: Sequence[str | os.PathLike[str]] = (),
    on_error: Callable[[PurePosixPath, str], None] | None = None,
) -> Iterator[tuple[InputItem, PurePosixPath]]:
    """Each input of :func:`discover_inputs` with its artifact stem (:func:`artifact_stems`), lazily.

    A folder is walked one sub-folder at a time in the same sorted order, so a dataset of millions of
    images starts at once and never sits in memory as a whole. ``on_error(rel, message)`` is told about a
    sub-folder that cannot be listed, and the walk goes on; without it, that raises :class:`InputError`
    (an unlistable ``source`` always does).
    """
    src = Path(source)
    if not src.is_dir():
        items = discover_inputs(source, exclude)
        stems = artifact_stems(items)
        for item in items:
            yield item, stems[item.rel]
        return
    yield from _iter_folder(src, exclude, on_error)


def _real(path: str | os.PathLike[str]) -> str:
    return os.path.normcase(os.path.realpath(path))


def _walk_folder(root: Path, exclude: Sequence[str | os.PathLike[str]]) -> list[InputItem]:
    return [item for item, _ in _iter_folder(root, exclude, None)]


def _iter_folder(
    root: Path,
    exclude: Sequence[str | os.PathLike[str]],
    on_error: Callable[[PurePosixPath, str], None] | None,
) -> Iterator[tuple[InputItem, PurePosixPath]]:
    """Depth-first ``scandir`` walk, names sorted in each folder: the order of sorting by ``rel.parts``.

    Cheap on millions of files and immune to symlink loops: symlinked folders are never entered, so a
    folder's real path is the root's real path plus the names walked, and excluded folders are matched
    without a ``realpath`` per folder.
    """
    excluded = {_real(e) for e in exclude}
    root_real = _real(root)
    if any(root_real == ex or root_real.startswith(ex.rstrip(os.sep) + os.sep) for ex in excluded):
        return
    # A stack of iterators over each open folder's sorted entries: (name, is_folder, path, real path).
    stack = [_folder_entries(os.fspath(root), root_real, (), excluded, None)]
    while stack:
        entry = next(stack[-1], None)
        if entry is None:
            stack.pop()
            continue
        if isinstance(entry[0], InputItem):
            yield entry  # type: ignore[misc]
        else:
            path, real, parts = entry  # a sub-folder: descend
            stack.append(_folder_entries(path, real, parts, excluded, on_error))


def _folder_entries(
    folder: str,
    folder_real: str,
    parts: tuple[str, ...],
    excluded: set[str],
    on_error: Callable[[PurePosixPath, str], None] | None,
) -> Iterator[tuple]:
    """One folder's images (with stems) and sub-folders, interleaved in name order."""
    try:
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as exc:
        message = f"cannot list folder {folder}: {exc.strerror or exc}"
        if on_error is None or not parts:
            raise InputError(message) from None
        on_error(PurePosixPath(*parts), message)
        return
    images: list[InputItem] = []
    order: list[tuple[str, object]] = []
    for entry in entries:
        name = entry.name
        if name.startswith("."):
            continue
        if entry.is_dir(follow_symlinks=False):
            sub_real = os.path.join(folder_real, os.path.normcase(name))
            if sub_real not in excluded:
                order.append((name, (entry.path, sub_real, (*parts, name))))
        # is_file() follows symlinks: linked files count, dangling links and linked folders do not.
        elif os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS and entry.is_file():
            item = InputItem(Path(entry.path), PurePosixPath(*parts, name))
            images.append(item)
            order.append((name, item))
    stems = artifact_stems(images)
    for _, what in order:
        yield (what, stems[what.rel]) if isinstance(what, InputItem) else what


def _read_list(list_file: Path) -> list[InputItem]:
    """Read a list file: one path per line; blank lines and ``#`` comments ignored.

    Relative paths are resolved against the list file's folder. Every entry is kept, even a
    missing file or a non-image, so the loader reports it and no listed input goes unaccounted.
    ``rel`` is the path as written when it is relative without ``..``; otherwise (absolute, or
    escaping with ``..``) it is the path relative to the common parent folder of all such
    entries. Repeated entries for the same file are listed once; two different files that would
    get the same ``rel`` are an :class:`InputError`, since their outputs would overwrite each other.
    """
    try:
        text = list_file.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"input list is not UTF-8 text: {list_file}") from None
    except OSError as exc:
        raise InputError(f"cannot read input list {list_file}: {exc.strerror or exc}") from None

    base = Path(os.path.abspath(list_file.parent))
    entries: list[tuple[Path, PurePosixPath | None]] = []  # rel None: decided once all are known
    for line in text.splitlines():
        written = line.strip()
        if not written or written.startswith("#"):
            continue
        as_written = Path(written)
        path = Path(os.path.normpath(base / as_written))
        if as_written.is_absolute() or ".." in as_written.parts:
            entries.append((path, None))
        else:
            entries.append((path, PurePosixPath(*as_written.parts)))

    outside = [path for path, rel in entries if rel is None]
    try:
        common = Path(os.path.commonpath([p.parent for p in outside])) if outside else base
    except ValueError:  # Windows: entries on different drives share no parent
        raise InputError(f"input list entries share no common folder: {list_file}") from None

    items: list[InputItem] = []
    seen_paths: set[str] = set()
    owner_of_rel: dict[PurePosixPath, Path] = {}
    for path, rel in entries:
        key = os.path.normcase(os.fspath(path))
        if key in seen_paths:
            continue
        seen_paths.add(key)
        if rel is None:
            rel = PurePosixPath(*path.relative_to(common).parts)
        if rel in owner_of_rel:
            raise InputError(
                f"input list entries {owner_of_rel[rel]} and {path} would both be written as {rel}"
            )
        owner_of_rel[rel] = path
        items.append(InputItem(path, rel))
    return items


def artifact_stems(items: Sequence[InputItem]) -> dict[PurePosixPath, PurePosixPath]:
    """Map each input's ``rel`` to the path stem its artifacts are named after.

    The stem is ``rel`` without its extension (``a/img.jpg`` -> ``a/img``), except when several
    inputs in one folder share a stem: then each gets its extension folded in (``a/img_jpg``,
    ``a/img_png``) so their artifacts stay apart. If folding itself collides with another name
    (``a/img_jpg.png`` next to ``a/img.jpg`` and ``a/img.png``), later ones in ``rel`` order get
    ``_2``, ``_3``... so the result is always one-to-one.
    """
    rels = sorted(dict.fromkeys(item.rel for item in items), key=lambda rel: rel.parts)
    by_stem: dict[tuple[PurePosixPath, str], list[PurePosixPath]] = defaultdict(list)
    for rel in rels:
        by_stem[(rel.parent, rel.stem)].append(rel)

    wanted: dict[PurePosixPath, PurePosixPath] = {}
    for (parent, stem), group in by_stem.items():
        for rel in group:
            folded = f"{stem}_{rel.suffix[1:]}" if len(group) > 1 and rel.suffix else stem
            wanted[rel] = parent / folded

    stems: dict[PurePosixPath, PurePosixPath] = {}
    taken: set[PurePosixPath] = set()
    for rel in rels:
        stem_path = wanted[rel]
        counter = 1
        while stem_path in taken:
            counter += 1
            stem_path = wanted[rel].with_name(f"{wanted[rel].name}_{counter}")
        taken.add(stem_path)
        stems[rel] = stem_path
    return stems
