"""The fast embedding engine is dlib's face-recognition network: same weights, same numbers.

The small tests run everywhere on the committed face chips (tests/data/face_chips and
the packaged reference chip); the real-face tests take people-small and a few hundred
lfw-dev faces from ../shared/photos and skip when it is absent.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from organizer import dlib_resnet, embedding, faces
from organizer.imaging import open_image
from organizer.reference_chip import reference_chip
from tests.conftest import FIXTURES, photos_dir

TOLERANCE = 1e-4


def committed_chips() -> np.ndarray:
    paths = sorted((FIXTURES / "face_chips").glob("*.jpg"))
    assert paths, "tests/data/face_chips is empty"
    chips = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    return np.stack([reference_chip(), *chips])


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> embedding.OnnxEmbedder:
    """An engine built from the installed model file into a fresh folder."""
    path = embedding.engine_file(engine_dir=tmp_path_factory.mktemp("engines"))
    return embedding.onnx_embedder(path)


def test_the_model_file_reads_as_dlibs_network() -> None:
    net = dlib_resnet.read_face_resnet(dlib_resnet.default_model_path())
    assert net.mean_rgb == pytest.approx([122.782, 117.001, 104.298], abs=1e-3)
    assert net.stem_conv.weight.shape == (32, 3, 7, 7) and net.stem_conv.stride == 2
    assert [(b.conv_b.weight.shape[0], b.downsample) for b in net.blocks] == (
        [(32, False)] * 3 + [(64, True)] + [(64, False)] * 3 + [(128, True)] + [(128, False)] * 2
        + [(256, True)] + [(256, False)] * 2 + [(256, True)])
    assert net.fc.shape == (256, 128)


def test_committed_chips_give_dlibs_descriptors(engine: embedding.OnnxEmbedder) -> None:
    chips = committed_chips()
    ref = faces._dlib_descriptors(chips)
    fast = engine(chips)
    reference = dlib_resnet.forward_numpy(dlib_resnet.read_face_resnet(dlib_resnet.default_model_path()), chips)
    print(f"max abs difference on {len(chips)} committed chips: onnx {np.abs(fast - ref).max():.2e}, "
          f"numpy {np.abs(reference - ref).max():.2e}")
    assert fast.shape == (len(chips), 128) and fast.dtype == np.float32
    assert np.abs(fast - ref).max() <= TOLERANCE
    assert np.abs(reference - ref).max() <= TOLERANCE
    # one call for the batch gives what one call per chip gives
    assert np.abs(np.concatenate([engine(c[None]) for c in chips]) - fast).max() <= 1e-6


def test_engine_file_is_built_once_and_reused(tmp_path: Path) -> None:
    first = embedding.engine_file(engine_dir=tmp_path)
    stamp = first.stat().st_mtime_ns
    again = embedding.engine_file(engine_dir=tmp_path)
    assert again == first and again.stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == [first.name]   # no leftover partial file


def test_an_engine_that_disagrees_with_dlib_is_refused(engine: embedding.OnnxEmbedder) -> None:
    off_by_a_bit = lambda chips: faces._dlib_descriptors(chips) + 1e-3
    with pytest.raises(embedding.EngineUnavailable, match="differs from dlib"):
        embedding.load_engine(off_by_a_bit, path=engine.path)
    checked = embedding.load_engine(faces._dlib_descriptors, path=engine.path)
    assert checked.check_difference is not None and checked.check_difference <= TOLERANCE


def test_a_broken_engine_file_is_refused(tmp_path: Path) -> None:
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    with pytest.raises(embedding.EngineUnavailable):
        embedding.load_engine(faces._dlib_descriptors, path=broken)


def test_faces_falls_back_to_dlib_with_one_notice(monkeypatch: pytest.MonkeyPatch,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    image = np.asarray(Image.open(min((FIXTURES / "face_chips").glob("*.jpg"))).convert("RGB"))
    image = np.ascontiguousarray(np.pad(image, ((75, 75), (75, 75), (0, 0)), mode="edge"))
    boxes = faces.detect(image)
    assert boxes, "the committed chip should hold a detectable face"
    monkeypatch.setattr(embedding, "SELF_CHECK_TOLERANCE", -1.0)   # no engine can pass
    faces._engine.cache_clear()
    try:
        with caplog.at_level(logging.WARNING, logger="organizer.faces"):
            assert faces.embedding_engine() == "dlib"
            got = faces.embed(image, boxes)
        notices = [r.getMessage() for r in caplog.records]
        assert len(notices) == 1 and "dlib's slower descriptor" in notices[0] and "\n" not in notices[0]
        ref = faces._api().face_encodings(image, boxes, num_jitters=1, model="small")
        assert all(np.array_equal(g.embedding, r) for g, r in zip(got, ref))
    finally:
        faces._engine.cache_clear()


# ---------------------------------------------------------------- real faces

def _max_difference(images: list[Path], engine: embedding.OnnxEmbedder) -> tuple[float, int]:
    """Largest per-value difference between the engine on dlib's chips and dlib's own
    compute_face_descriptor, over every face HOG finds in ``images``."""
    import dlib

    api = faces._api()
    worst, count = 0.0, 0
    for path in images:
        img = open_image(path, max_size=1600, max_pixels=180_000_000).pixels
        boxes = faces.detect(img)
        if not boxes:
            continue
        shapes = dlib.full_object_detections()
        shapes.extend(api._raw_face_landmarks(img, boxes, model="small"))
        ref = np.array([api.face_encoder.compute_face_descriptor(img, s, 1) for s in shapes])
        fast = engine(np.stack(dlib.get_face_chips(img, shapes, size=150, padding=0.25)))
        worst, count = max(worst, float(np.abs(fast - ref).max())), count + len(boxes)
    return worst, count


def test_people_small_faces_match_dlib(engine: embedding.OnnxEmbedder) -> None:
    images = sorted(photos_dir("people-small").rglob("*.jpg"))
    worst, count = _max_difference(images, engine)
    print(f"people-small: max abs difference {worst:.2e} over {count} faces")
    assert count >= 15 and worst <= TOLERANCE


def test_scanner_path_gives_dlibs_vectors() -> None:
    """faces.embed (what the scanner calls) with the engine = face_recognition's encodings."""
    images = sorted(photos_dir("people-small/test").rglob("*.jpg"))
    assert faces.embedding_engine() == "onnx"
    api = faces._api()
    for path in images:
        img = open_image(path, max_size=1600, max_pixels=180_000_000).pixels
        boxes = faces.detect(img)
        got = np.array([d.embedding for d in faces.embed(img, boxes)])
        ref = np.array(api.face_encodings(img, boxes, num_jitters=1, model="small"))
        assert got.dtype == np.float64 and np.abs(got - ref).max() <= TOLERANCE


@pytest.mark.slow
def test_lfw_dev_faces_match_dlib(engine: embedding.OnnxEmbedder) -> None:
    people = sorted(d for d in photos_dir("lfw-dev").iterdir() if d.is_dir())
    images = [min(d.glob("*.jpg")) for d in people[::4]]     # 285 people, one photo each
    worst, count = _max_difference(images, engine)
    print(f"lfw-dev: max abs difference {worst:.2e} over {count} faces")
    assert count >= 250 and worst <= TOLERANCE
