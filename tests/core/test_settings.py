import dataclasses
import json

import pytest

from tilesapp.core.errors import SettingsError
from tilesapp.core.settings import PRESETS, Settings, load_settings, save_settings


def test_defaults_are_the_unet_preset_at_0325_um():
    s = Settings()
    assert (s.tile_size, s.overlap, s.target_pixel_size, s.target_unit) == (512, 128, 0.325, "um")
    assert s.preset == "unet" and s.pixel_size is None and s.calibrate


@pytest.mark.parametrize(
    "changes, field, words",
    [
        ({"overlap": 512}, "overlap", "smaller than the tile size"),
        ({"overlap": -1}, "overlap", "between 0"),
        ({"tile_size": 0}, "tile_size", "between 1"),
        ({"tile_size": 12.5}, "tile_size", "whole number"),
        ({"dtype": "float32", "format": "png"}, "format", ".png files can only store uint8 or uint16"),
        ({"dtype": "uint16", "format": "jpg", "bounds": (0, 255)}, "format", ".jpg files can only store uint8"),
        ({"dtype": "uint8", "bounds": (0.0, 0.5)}, "bounds", "whole numbers"),
        ({"dtype": "uint8", "bounds": (0, 256)}, "bounds", "0–255"),
        ({"dtype": "uint16", "bounds": (-1, 100)}, "bounds", "0–65535"),
        ({"bounds": (1.0, 1.0)}, "bounds", "smaller than the upper bound"),
        ({"percentiles": (50, 10)}, "percentiles", "0 <= low < high <= 100"),
        ({"percentiles": (0, 101)}, "percentiles", "0 <= low < high <= 100"),
        ({"norm": "zscore"}, "norm", "none, local, global"),
        ({"unit": "furlong"}, "unit", "not a length unit"),
        ({"target_unit": "Å"}, "target_unit", "not a length unit"),  # read from files, never typed
        ({"pixel_size": -0.5}, "pixel_size", "greater than 0"),
        ({"target_pixel_size": 0}, "target_pixel_size", "greater than 0"),
        ({"calibrate": "yes"}, "calibrate", "true or false"),
    ],
)
def test_invalid_settings_name_field_and_rule(changes, field, words):
    with pytest.raises(SettingsError) as err:
        dataclasses.replace(Settings(), **changes)
    assert err.value.field == field
    assert words in str(err.value)


def test_norm_none_ignores_bounds_but_not_format_rules():
    s = Settings(norm="none", dtype="uint8", bounds=(0.0, 0.5), format="png")
    assert s.bounds == (0.0, 0.5)
    with pytest.raises(SettingsError, match="jpg"):
        Settings(norm="none", dtype="uint16", format="jpg")


@pytest.mark.parametrize("unit", ["µm", "μm", "um", "micron", "UM"])
def test_micrometre_spellings(unit):
    s = Settings(pixel_size=650, unit="nm", target_unit=unit)
    assert s.target_unit == "um"
    assert s.pixel_size_um == pytest.approx((0.65, 0.65))


def test_anisotropic_manual_pixel_size():
    s = Settings(pixel_size=(0.5, 0.25), unit="mm")
    assert s.pixel_size_um == (500.0, 250.0)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_set_all_four_fields(name):
    s = Settings(norm="none", dtype="uint16", format="tif", bounds=(3, 9)).with_preset(name)
    for key, value in PRESETS[name].items():
        assert getattr(s, key) == value
    assert s.preset == name


def test_yolo_preset_values():
    s = Settings().with_preset("yolo")
    assert (s.norm, s.bounds, s.dtype, s.format) == ("global", (0.0, 255.0), "uint8", "png")


def test_json_round_trip_and_unknown_keys(tmp_path):
    s = Settings(tile_size=256, overlap=32, pixel_size=(0.5, 0.6), norm="local", percentiles=(1, 99.5))
    path = tmp_path / "s.json"
    save_settings(s, path)
    data = json.loads(path.read_text())
    assert data["pixel_size"] == [0.5, 0.6] and data["tile_size"] == 256
    loaded, unknown = load_settings(path)
    assert loaded == s and unknown == []
    data.update(colour="blue", patch_size=128)
    path.write_text(json.dumps(data))
    loaded, unknown = load_settings(path)
    assert unknown == ["colour"] and loaded.tile_size == 128  # old key name accepted


def test_bad_settings_files(tmp_path):
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{ not json")
    with pytest.raises(SettingsError, match="not valid JSON"):
        load_settings(bad)
    bad.write_text('{"overlap": 999}')
    with pytest.raises(SettingsError) as err:
        load_settings(bad)
    assert err.value.field == "overlap"


def test_settings_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Settings().tile_size = 3
