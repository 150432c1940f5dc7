"""config, values, inputs and store: the small shared pieces."""

import json
import threading

import pytest

from valdemo import values
from valdemo.config import Settings, documented_settings
from valdemo.inputs import (
    InputError,
    check_float,
    check_int,
    check_text,
    parse_label,
    read_records,
    value_from_filename,
)
from valdemo.store import Store


def test_every_setting_is_documented_in_readme():
    readme = (__import__("tests.conftest", fromlist=["ROOT"]).ROOT / "README.md").read_text()
    for env, doc in documented_settings():
        assert env in readme, f"{env} missing from README"
        assert doc


def test_bad_setting_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("VALDEMO_LOCAL_BATCH", "lots")
    with pytest.raises(ValueError, match="VALDEMO_LOCAL_BATCH must be an integer"):
        Settings.from_env()


def test_value_systems():
    assert len(values.SCHWARTZ) == 10 and len(set(values.SCHWARTZ_KEYS)) == 10
    assert len(values.MORAL_FOUNDATIONS) == 5
    assert [o.key for o in values.SVO_ORIENTATIONS] == ["altruistic", "prosocial", "individualistic", "competitive"]
    assert values.get_value("self direction").key == "SELF-DIRECTION"
    assert values.get_value("Benevolence").key == "BENEVOLENCE"
    with pytest.raises(KeyError, match="unknown value"):
        values.get_value("greed")
    # Orientation bounds tile (-90, 90] without gaps.
    bounds = sorted((o.low, o.high) for o in values.SVO_ORIENTATIONS)
    assert bounds[0][0] == -90 and bounds[-1][1] == 90
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:], strict=False))


@pytest.mark.parametrize("text,error", [(None, "missing"), ("", "empty"), ("  \n ", "empty"),
                                        ("x" * 20_001, "limit is 20,000"), ("a\x00b", "binary")])
def test_check_text_rejects(text, error):
    with pytest.raises(InputError, match=error):
        check_text(text, "text")


def test_numbers():
    assert check_int(3.0, "n", 1, 5) == 3
    for bad in (0, 6, 2.5, "x", None):
        with pytest.raises(InputError):
            check_int(bad, "n", 1, 5)
    assert check_float("0.5", "t", 0, 1) == 0.5
    with pytest.raises(InputError):
        check_float(float("nan"), "t", 0, 1)


def test_read_records_csv_and_jsonl(tmp_path):
    csv_file = tmp_path / "x.csv"
    csv_file.write_text('text,value,label\n"I won, finally",ACHIEVEMENT,1\n\nhello,POWER,0\n', encoding="utf-8")
    assert read_records(csv_file, ["text", "value"], ["label"]) == [
        {"text": "I won, finally", "value": "ACHIEVEMENT", "label": "1"},
        {"text": "hello", "value": "POWER", "label": "0"},
    ]
    jl = tmp_path / "x.jsonl"
    jl.write_text(json.dumps({"text": "a", "value": "POWER"}) + "\n\n" + json.dumps({"text": "b", "value": "X"}))
    assert len(read_records(jl, ["text", "value"])) == 2


@pytest.mark.parametrize("content,needle", [
    (b"", "is empty"),
    (b"text,value\n", "no rows"),
    (b"text\nhello\n", "missing column(s) value"),
    (b"text,value,zzz\na,b,c\n", "unexpected column(s) zzz"),
    (b"text,value\na\n", "row 2: 1 cells"),
    (b"text,value\n,POWER\n", "row 2: empty text"),
    (b"\xff\xfe\x00t\x00e", "binary"),
    (b"text,value\ncaf\xe9,POWER\n", "not UTF-8"),
    (b"text,text\na,b\n", "duplicate column"),
])
def test_read_records_errors_name_the_problem(tmp_path, content, needle):
    f = tmp_path / "bad.csv"
    f.write_bytes(content)
    with pytest.raises(InputError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        read_records(f, ["text", "value"], ["label"])


def test_read_records_jsonl_errors(tmp_path):
    f = tmp_path / "bad.jsonl"
    f.write_text('{"text": "a", "value": "b"}\n{not json}\n')
    with pytest.raises(InputError, match="line 2: not valid JSON"):
        read_records(f, ["text", "value"])


def test_upload_cap(tmp_path, monkeypatch):
    from valdemo.config import reload_settings

    monkeypatch.setenv("VALDEMO_MAX_UPLOAD_MB", "0.01")
    reload_settings()
    try:
        f = tmp_path / "big.csv"
        f.write_text("text,value\n" + "a,b\n" * 5000)
        with pytest.raises(InputError, match="the limit is 0.01 MB"):
            read_records(f, ["text", "value"])
    finally:
        monkeypatch.delenv("VALDEMO_MAX_UPLOAD_MB")
        reload_settings()


def test_labels_and_filenames():
    assert [parse_label(x, "r") for x in ["1", "-1", "0", "adheres", "Opposes", "unrelated", "A", "c"]] == \
        [1, -1, 0, 1, -1, 0, 1, 0]
    with pytest.raises(InputError, match="label '2'"):
        parse_label("2", "row 3")
    assert value_from_filename("/x/valuenet_ACHIEVEMENT.csv") == "ACHIEVEMENT"
    assert value_from_filename("plain.csv") is None


def test_store_runs_roundtrip_and_threads(tmp_path):
    store = Store(tmp_path / "db.sqlite")
    run_id = store._save_run("demo", {"n": 2}, {"acc": 0.5}, [{"i": 0}, {"i": 1}])
    assert store.get_run(run_id)["summary"] == {"acc": 0.5}
    assert store.run_rows(run_id) == [{"i": 0}, {"i": 1}]
    threads = [threading.Thread(target=lambda i=i: store._save_run("t", {}, {"i": i}, [])) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(store.list_runs("t")) == 10
    assert Store(tmp_path / "db.sqlite").get_run(run_id)["params"] == {"n": 2}
    mode = store.query("PRAGMA journal_mode")[0][0]
    assert mode == "wal"
