"""discover_inputs / artifact_stems: which files a run sees, and where their outputs go."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

import pytest

from uvaug.io import InputError, InputItem, artifact_stems, discover_inputs


def _touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _rels(items: list[InputItem]) -> list[str]:
    return [str(item.rel) for item in items]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "in"
    for rel in [
        "b.jpg",
        "a.jpg",
        "UPPER.TIFF",
        "a/x.PNG",
        "a/y.JpEg",
        "a/sub/z.webp",
        "a/n o t é.bmp",  # spaces and unicode
        "a/notes.txt",
        "a/noext",
        "c/d/e/deep.tif",
        ".hidden.jpg",
        ".cache/h.jpg",
        "a/.thumbs/t.jpg",
    ]:
        _touch(root / rel)
    (root / "empty").mkdir()
    return root


def test_folder_recursive_sorted_case_insensitive(tree: Path) -> None:
    items = discover_inputs(tree)
    assert _rels(items) == [
        "UPPER.TIFF",
        "a/n o t é.bmp",
        "a/sub/z.webp",
        "a/x.PNG",
        "a/y.JpEg",
        "a.jpg",
        "b.jpg",
        "c/d/e/deep.tif",
    ]
    for item in items:
        assert isinstance(item.rel, PurePosixPath)
        assert item.path == tree / item.rel
        assert item.path.is_file()


def test_single_image_file(tree: Path) -> None:
    assert discover_inputs(str(tree / "a" / "y.JpEg")) == [
        InputItem(tree / "a" / "y.JpEg", PurePosixPath("y.JpEg"))
    ]


def test_missing_source(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"^input not found: .*nowhere$"):
        discover_inputs(tmp_path / "nowhere")


def test_empty_folder(tmp_path: Path) -> None:
    assert discover_inputs(tmp_path) == []


def test_exclude_output_folder_inside_input(tree: Path) -> None:
    _touch(tree / "out" / "render" / "r.png")
    _touch(tree / "out.png")  # a file of the same name is not the excluded folder
    rels = _rels(discover_inputs(tree, exclude=[tree / "out"]))
    assert "out.png" in rels
    assert not any(rel.startswith("out/") for rel in rels)
    # Excluded paths are compared resolved, so a symlinked spelling of the folder works too.
    os.symlink(tree / "out", tree.parent / "out_link")
    assert _rels(discover_inputs(tree, exclude=[tree.parent / "out_link"])) == rels
    # A nested excluded folder prunes only itself.
    assert _rels(discover_inputs(tree, exclude=[tree / "a" / "sub"])) == [
        r for r in _rels(discover_inputs(tree)) if not r.startswith("a/sub/")
    ]


def test_source_inside_excluded_folder_gives_nothing(tree: Path) -> None:
    assert discover_inputs(tree / "a", exclude=[tree]) == []


def test_symlinks(tree: Path) -> None:
    os.symlink(tree, tree / "loop")  # a folder linking to its ancestor must not hang or repeat
    os.symlink(tree / "a", tree / "alias")
    os.symlink(tree / "b.jpg", tree / "linked.jpg")  # linked files are inputs
    os.symlink(tree / "gone.jpg", tree / "dangling.jpg")  # dangling links are not
    rels = _rels(discover_inputs(tree))
    assert "linked.jpg" in rels
    assert "dangling.jpg" not in rels
    assert not any(rel.startswith(("loop/", "alias/")) for rel in rels)
    assert len(rels) == len(set(rels)) == 9


def test_list_file(tmp_path: Path) -> None:
    lists = tmp_path / "lists"
    rel_img = _touch(lists / "imgs" / "a.jpg")
    abs1 = _touch(tmp_path / "other" / "x" / "b.png")
    abs2 = _touch(tmp_path / "other" / "y" / "c.jpg")
    up = _touch(tmp_path / "up" / "d.jpg")
    (lists / "notes.txt").write_text("not an image")
    list_file = lists / "inputs.lst"
    list_file.write_text(
        "# inputs for the run\n"
        "\n"
        "imgs/a.jpg\n"
        f"   {abs1}   \n"
        "  # indented comment\n"
        f"{abs2}\r\n"
        "../up/d.jpg\n"
        "missing.jpg\n"
        "notes.txt\n"
        "./imgs/a.jpg\n",  # the same file again: listed once
        encoding="utf-8",
    )
    items = discover_inputs(list_file)
    assert [(item.path, str(item.rel)) for item in items] == [
        (rel_img, "imgs/a.jpg"),
        (abs1, "other/x/b.png"),  # absolute and ".." entries: relative to their common parent
        (abs2, "other/y/c.jpg"),
        (up, "up/d.jpg"),
        (lists / "missing.jpg", "missing.jpg"),  # kept: the loader reports it
        (lists / "notes.txt", "notes.txt"),
    ]
    assert all(item.path.is_absolute() for item in items)


def test_list_file_single_absolute_entry(tmp_path: Path) -> None:
    img = _touch(tmp_path / "data" / "deep" / "face.jpg")
    (tmp_path / "one.txt").write_text(f"{img}\n")
    assert _rels(discover_inputs(tmp_path / "one.txt")) == ["face.jpg"]


def test_list_file_unicode_with_bom(tmp_path: Path) -> None:
    img = _touch(tmp_path / "顔" / "写真 1.jpg")
    (tmp_path / "list.csv").write_bytes("\ufeff顔/写真 1.jpg\n".encode())
    assert discover_inputs(tmp_path / "list.csv") == [InputItem(img, PurePosixPath("顔/写真 1.jpg"))]


def test_list_file_rel_collision_is_an_error(tmp_path: Path) -> None:
    _touch(tmp_path / "face.jpg")
    other = _touch(tmp_path / "elsewhere" / "face.jpg")
    (tmp_path / "list.txt").write_text(f"face.jpg\n{other}\n")  # both would be written as face.jpg
    with pytest.raises(InputError, match=r"would both be written as face\.jpg"):
        discover_inputs(tmp_path / "list.txt")


def test_list_file_not_text(tmp_path: Path) -> None:
    (tmp_path / "archive.zip").write_bytes(b"PK\x03\x04\xff\xfe\x80\x81")
    with pytest.raises(InputError, match="not UTF-8 text"):
        discover_inputs(tmp_path / "archive.zip")


def _items(*rels: str) -> list[InputItem]:
    return [InputItem(Path("/data") / rel, PurePosixPath(rel)) for rel in rels]


def test_artifact_stems_plain() -> None:
    stems = artifact_stems(_items("a/img.jpg", "b/img.png", "c.d.jpeg", "noext"))
    assert stems == {
        PurePosixPath("a/img.jpg"): PurePosixPath("a/img"),
        PurePosixPath("b/img.png"): PurePosixPath("b/img"),  # other folder: no clash
        PurePosixPath("c.d.jpeg"): PurePosixPath("c.d"),
        PurePosixPath("noext"): PurePosixPath("noext"),
    }


def test_artifact_stems_fold_extension_on_clash() -> None:
    stems = artifact_stems(_items("a/img.jpg", "a/img.png", "a/other.jpg", "img.JPG", "img"))
    assert stems == {
        PurePosixPath("a/img.jpg"): PurePosixPath("a/img_jpg"),
        PurePosixPath("a/img.png"): PurePosixPath("a/img_png"),
        PurePosixPath("a/other.jpg"): PurePosixPath("a/other"),
        PurePosixPath("img.JPG"): PurePosixPath("img_JPG"),
        PurePosixPath("img"): PurePosixPath("img"),
    }


def test_artifact_stems_always_one_to_one() -> None:
    stems = artifact_stems(_items("img.jpg", "img.png", "img_jpg.png", "img_jpg_2.bmp"))
    assert stems[PurePosixPath("img.jpg")] == PurePosixPath("img_jpg")
    assert stems[PurePosixPath("img_jpg.png")] == PurePosixPath("img_jpg_2")  # folded name was taken
    assert len(set(stems.values())) == len(stems) == 4


def test_artifact_stems_of_discovered_tree(tree: Path) -> None:
    _touch(tree / "a" / "x.jpg")  # next to a/x.PNG
    items = discover_inputs(tree)
    stems = artifact_stems(items)
    assert set(stems) == {item.rel for item in items}
    assert stems[PurePosixPath("a/x.PNG")] == PurePosixPath("a/x_PNG")
    assert stems[PurePosixPath("a/x.jpg")] == PurePosixPath("a/x_jpg")
    assert stems[PurePosixPath("a/n o t é.bmp")] == PurePosixPath("a/n o t é")
