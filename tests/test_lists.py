"""Static lists and the TAC table: imports (CSV, Parquet), bad rows, atomic replace, lookups, CLI."""
import json
import random
import threading

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from touchpoint.control.cli import main
from touchpoint.control.lists import ListStore, import_list, import_tac, imei_tac, importing, remove_list, source
from touchpoint.control.lists.columns import pack_text
from touchpoint.control.lists.layout import ListError
from touchpoint.probe.record import NO_DIGITS, pack, unpack

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


def write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding))
    return path


def lookup(lst, msisdns=(), imsis=None):
    return lst.rows(pack(list(msisdns)), None if imsis is None else pack(list(imsis)))


# --- importing -------------------------------------------------------------------------------------

def test_csv_types_keys_and_chinese_text(tmp_path):
    src = write(tmp_path / "a.csv", "\ufeffMSISDN,imsi,brand,age,arpu,vip,note\n"
                "8613800000001,460001000000001,华为,34,58.5,yes,首月免费\n"
                "+8613800000002,460001000000002,苹果,,99,no,\n"
                " 008613800000003 ,,小米,70,1e2,y,老用户 \n")
    meta = import_list(tmp_path / "d", "demo", src)
    assert meta["rows"] == 3 and meta["bad_rows"] == 0 and meta["format"] == "csv"
    assert {c["name"]: c["type"] for c in meta["columns"]} == {
        "brand": "text", "age": "int", "arpu": "float", "vip": "bool", "note": "text"}
    lst = ListStore(tmp_path / "d").get("demo")
    # '+', the international prefix 00 and surrounding spaces are dropped: one number each.
    assert unpack(lst.keys["msisdn"][0]).tolist() == ["8613800000001", "8613800000002", "8613800000003"]
    assert lst.keys["msisdn"][0].tolist() == pack(["8613800000001", "8613800000002", "8613800000003"]).tolist()
    rows = lookup(lst, ["8613800000003", "8613800000002", "8613800000001", "8613800000009"])
    assert rows.tolist() == [2, 1, 0, -1]
    assert lst.column("brand").strings(rows).tolist() == ["小米", "苹果", "华为", ""]
    assert lst.column("note").strings(rows).tolist() == ["老用户", "", "首月免费", ""]
    age = lst.column("age")
    assert age.values.dtype == np.int8 and age[rows][[0, 2]].tolist() == [70, 34]
    assert age.present(rows).tolist() == [True, False, True, False]
    assert np.isnan(lst.column("arpu")[rows][3]) and lst.column("arpu")[rows][0] == 100.0
    assert lst.column("vip")[rows].tolist() == [1, 0, 1, -1]
    brand = lst.column("brand")
    assert brand.categories.tolist() == sorted(["华为", "苹果", "小米"])
    assert brand[rows][0] == brand.code("小米") and brand.code("三星") == -1


@pytest.mark.parametrize("delimiter", ["\t", ";"])
def test_other_delimiters(tmp_path, delimiter):
    src = write(tmp_path / "a.csv", delimiter.join(["imsi", "plan", "city"]) + "\n" +
                delimiter.join(["460001000000001", "畅享, 199", "北京"]) + "\n")
    import_list(tmp_path / "d", "x", src)
    lst = ListStore(tmp_path / "d").get("x")
    rows = lst.rows(None, pack(["460001000000001"]))
    assert lst.column("plan").strings(rows).tolist() == ["畅享, 199"]
    assert "msisdn" not in lst.keys


def test_forced_types_and_wide_integers(tmp_path):
    src = write(tmp_path / "a.csv", "msisdn,zip,score,big\n8613800000001,010,1,5000000000\n"
                "8613800000002,100,2,-3\n")
    meta = import_list(tmp_path / "d", "x", src, types={"zip": "text", "score": "float"})
    cols = {c["name"]: c for c in meta["columns"]}
    assert cols["zip"]["type"] == "text" and cols["score"]["type"] == "float"
    assert cols["big"]["dtype"] == "int64" and cols["big"]["min"] == -3
    lst = ListStore(tmp_path / "d").get("x")
    assert lst.column("zip").strings([0, 1]).tolist() == ["010", "100"]
    with pytest.raises(ListError, match="no attribute column 'nope'"):
        import_list(tmp_path / "d", "x", src, types={"nope": "int"})
    with pytest.raises(ListError, match="the types are"):
        import_list(tmp_path / "d", "x", src, types={"zip": "date"})


def test_parquet_matches_csv(tmp_path):
    rng = np.random.default_rng(3)
    n = 3000
    msisdn = [f"86138{i:08d}" for i in rng.choice(10**8, n, replace=False)]
    imsi = [f"46000{i:010d}" if i % 7 else None for i in range(n)]
    brand = [["华为", "苹果", "小米"][i % 3] for i in range(n)]
    age = rng.integers(16, 90, n)
    arpu = np.round(rng.random(n) * 300, 2)
    vip = rng.random(n) < 0.3
    table = pa.table({"msisdn": pa.array([int(m) for m in msisdn], pa.int64()), "imsi": imsi, "brand": brand,
                      "age": age, "arpu": arpu, "vip": vip})
    pq.write_table(table, tmp_path / "a.parquet", row_group_size=1000)
    lines = ["msisdn,imsi,brand,age,arpu,vip"] + [
        f"{m},{i or ''},{b},{a},{p},{str(v).lower()}" for m, i, b, a, p, v in zip(msisdn, imsi, brand, age, arpu, vip)]
    write(tmp_path / "a.csv", "\n".join(lines) + "\n")
    meta_p = import_list(tmp_path / "d", "p", tmp_path / "a.parquet")
    meta_c = import_list(tmp_path / "d", "c", tmp_path / "a.csv")
    assert meta_p["format"] == "parquet" and meta_p["rows"] == meta_c["rows"] == n
    store = ListStore(tmp_path / "d")
    p, c = store.get("p"), store.get("c")
    for key in ("msisdn", "imsi"):
        assert np.array_equal(p.keys[key][0], c.keys[key][0]) and np.array_equal(p.keys[key][1], c.keys[key][1])
    for name in ("brand", "age", "arpu", "vip"):
        assert p.column(name).strings(np.arange(n)).tolist() == c.column(name).strings(np.arange(n)).tolist()
    assert p.column("age")[np.arange(n)].tolist() == age.tolist()


def test_parquet_bad_rows_are_numbered(tmp_path):
    pq.write_table(pa.table({"imsi": ["460001000000001", None, "4600x", "460001000000004"],
                             "level": ["1", "2", "3", "four"]}), tmp_path / "a.parquet")
    meta = import_list(tmp_path / "d", "p", tmp_path / "a.parquet", types={"level": "int"})
    path = tmp_path / "a.parquet"
    assert meta["first_bad"] == [f"{path}: row 2: no imsi", f"{path}: row 3: imsi is not digits",
                                 f"{path}: row 4: level: 'four' is not an integer"]
    assert meta["rows"] == 1


# --- bad rows -------------------------------------------------------------------------------------

def test_bad_rows_named_by_line_rest_imported(tmp_path):
    src = write(tmp_path / "a.csv", "\n".join([
        "msisdn,imsi,brand,age",                        # 1
        "8613800000001,460001000000001,华为,31",        # 2 ok
        "8613800000002,46000100000000X,小米,27",        # 3 imsi not digits
        "8613800000003,460001000000003,苹果",           # 4 a column short
        "",                                             # 5 blank: no row, no error
        "8613800000004,460001000000004,vivo,forty",     # 6 bad number
        ",,OPPO,40",                                    # 7 no key
        "86138000000051234,,荣耀,45",                   # 8 17 digits
        "8613800000006,460001000000006,荣耀,45,extra",  # 9 a column too many
        "8613800000007,460001000000007,三星,52",        # 10 ok
        ",,,",                                          # 11 blank
    ]) + "\n")
    with open(tmp_path / "bad.txt", "w") as out:
        meta = import_list(tmp_path / "d", "x", src, types={"age": "int"}, errors=out)
    assert meta["rows"] == 2 and meta["bad_rows"] == 6 and meta["blank_lines"] == 2
    expected = [f"{src}:3: imsi is not digits", f"{src}:4: expected 4 columns, found 3",
                f"{src}:6: age: 'forty' is not an integer", f"{src}:7: no msisdn or imsi",
                f"{src}:8: msisdn has 17 digits, not 1 to 15", f"{src}:9: expected 4 columns, found 5"]
    assert meta["first_bad"] == expected
    assert (tmp_path / "bad.txt").read_text().splitlines() == expected
    lst = ListStore(tmp_path / "d").get("x")
    assert unpack(lst.keys["msisdn"][0]).tolist() == ["8613800000001", "8613800000007"]


def test_not_utf8(tmp_path):
    src = tmp_path / "a.csv"
    src.write_bytes("msisdn,brand\n8613800000001,华为\n8613800000002,".encode() + "华为".encode("gbk") + b"\n")
    meta = import_list(tmp_path / "d", "x", src)
    assert meta["first_bad"] == [f"{src}:3: brand is not UTF-8 text (save the file as UTF-8)"]
    assert meta["rows"] == 1


def test_line_numbers_across_blocks_against_truth(tmp_path, monkeypatch):
    """Many small blocks, bad rows of every kind at random lines: each is named by its line."""
    monkeypatch.setattr(source, "BLOCK", 1024)
    rnd = random.Random(5)
    lines, truth, good = ["msisdn,imsi,age"], [], []
    for i in range(3000):
        n = len(lines) + 1
        kind = rnd.random()
        m, s = f"86139{i:08d}", f"46000{i:010d}"
        if kind < 0.03:
            lines.append(f"{m},{s}")
            truth.append((n, "expected 3 columns, found 2"))
        elif kind < 0.06:
            lines.append(f"{m},{s},{i},9")
            truth.append((n, "expected 3 columns, found 4"))
        elif kind < 0.09:
            lines.append(f"{m},{s},x{i}")
            truth.append((n, f"age: 'x{i}' is not an integer"))
        elif kind < 0.11:
            lines.append(f"{m}a,{s},{i}")
            truth.append((n, "msisdn is not digits"))
        elif kind < 0.13:
            lines.append("")
        else:
            lines.append(f"{m},{s},{i}")
            good.append(i)
    src = write(tmp_path / "a.csv", "\n".join(lines) + "\n")
    with open(tmp_path / "bad.txt", "w") as out:
        meta = import_list(tmp_path / "d", "x", src, types={"age": "int"}, errors=out)
    assert (tmp_path / "bad.txt").read_text().splitlines() == [f"{src}:{n}: {w}" for n, w in truth]
    assert meta["bad_rows"] == len(truth) and meta["first_bad"] == [f"{src}:{n}: {w}" for n, w in truth[:20]]
    lst = ListStore(tmp_path / "d").get("x")
    assert lst.column("age")[np.arange(len(lst))].tolist() == good


def test_nothing_to_import_keeps_the_list(tmp_path):
    import_list(tmp_path / "d", "x", write(tmp_path / "a.csv", "msisdn,plan\n8613800000001,a\n"))
    with pytest.raises(ListError, match="no rows to import .2 bad.; list x is unchanged") as e:
        import_list(tmp_path / "d", "x", write(tmp_path / "b.csv", "msisdn,plan\nabc,b\n,c\n"))
    assert e.value.first_bad[0].endswith("b.csv:2: msisdn is not digits")
    assert ListStore(tmp_path / "d").get("x").column("plan").strings([0]).tolist() == ["a"]
    with pytest.raises(ListError, match="an msisdn or an imsi column"):
        import_list(tmp_path / "d", "x", write(tmp_path / "c.csv", "phone,plan\n1,a\n"))
    with pytest.raises(ListError, match="'plan' appears twice"):
        import_list(tmp_path / "d", "x", write(tmp_path / "c.csv", "msisdn,plan,Plan\n1,a,b\n"))
    with pytest.raises(ListError, match="not a list name"):
        import_list(tmp_path / "d", "../x", tmp_path / "a.csv")
    assert sorted(p.name for p in (tmp_path / "d" / "lists").iterdir() if not p.name.endswith(".lock")) == \
        [f".x.{ListStore(tmp_path / 'd').get('x').generation}", "x"]          # no debris left behind


def test_a_stray_quote_or_a_list_emptied_by_mistake_is_refused(tmp_path):
    """One unclosed quote on line 2 of a 100,001-line opt-out list once imported as 1 row, exit 0,
    and replaced the list: messages to people who must not get them. Both are refused now, the
    list kept, unless forced."""
    rows = "".join(f"86139{i:08d},no\n" for i in range(1, 100_001))
    import_list(tmp_path / "d", "optout", write(tmp_path / "a.csv", "msisdn,reason\n" + rows))
    stray = write(tmp_path / "b.csv", 'msisdn,reason\n8613900000000,"Apple 12\n' + rows)
    with pytest.raises(ListError, match=r"b.csv:2: a field runs over more than one line \(a quote opened there"):
        import_list(tmp_path / "d", "optout", stray)
    assert ListStore(tmp_path / "d").get("optout").meta["rows"] == 100_000
    short = write(tmp_path / "c.csv", "msisdn,reason\n" + rows[:len(rows) // 3])
    with pytest.raises(ListError, match="33,333 rows would replace the 100,000 of list optout, 67% fewer"):
        import_list(tmp_path / "d", "optout", short)
    assert ListStore(tmp_path / "d").get("optout").meta["rows"] == 100_000
    assert import_list(tmp_path / "d", "optout", short, max_shrink=0.7)["rows"] == 33_333
    assert import_list(tmp_path / "d", "optout", stray, force=True)["rows"] == 1          # as read, when asked
    res = CliRunner().invoke(main, ["lists", "import", "--data", str(tmp_path / "d"), "optout", str(short)])
    assert res.exit_code == 0                                                              # 1 row before: no shrink
    res = CliRunner().invoke(main, ["lists", "import", "--data", str(tmp_path / "d"), "optout", str(stray)])
    assert res.exit_code == 1 and "--force imports it as read" in res.output


def test_a_header_past_64_kib_is_read_whole(tmp_path):
    """The header was read from the first 64 KiB only: a wider one lost its last columns and every
    row was "bad" for its column count."""
    names = [f"attribute_{i:04d}_" + "x" * 40 for i in range(1300)]        # about 70 KB
    write(tmp_path / "w.csv", "msisdn," + ",".join(names) + "\n8613900000001," + ",".join("1" * 1300) + "\n")
    meta = import_list(tmp_path / "d", "wide", tmp_path / "w.csv")
    assert (meta["rows"], meta["bad_rows"], len(meta["columns"])) == (1, 0, 1300)
    write(tmp_path / "h.csv", "msisdn," + "x" * (2 << 20) + "\n1,2\n")
    with pytest.raises(ListError, match="h.csv:1: the header line is longer than 1 MiB"):
        import_list(tmp_path / "d", "huge", tmp_path / "h.csv")


def test_duplicates_last_row_wins(tmp_path):
    src = write(tmp_path / "a.csv", "msisdn,imsi,plan\n8613800000001,460001000000001,old\n"
                "8613800000002,460001000000002,b\n8613800000001,460001000000009,new\n"
                "8613800000001,,newest\n")
    meta = import_list(tmp_path / "d", "x", src)
    assert meta["duplicates"] == {"msisdn": 2, "imsi": 0} and meta["keys"] == {"msisdn": 2, "imsi": 3}
    lst = ListStore(tmp_path / "d").get("x")
    plan = lst.column("plan")
    assert plan.strings(lookup(lst, ["8613800000001"])).tolist() == ["newest"]
    # By IMSI first: the row of that IMSI, though its MSISDN was listed again later.
    assert plan.strings(lookup(lst, ["8613800000001"], ["460001000000001"])).tolist() == ["old"]


def test_categories_overflow_to_fixed_width(tmp_path, monkeypatch):
    monkeypatch.setattr(source, "BLOCK", 512)
    monkeypatch.setattr(importing, "MAX_CATEGORIES", 5)
    names = [f"名字{i % 40}" + "x" * (i % 9) for i in range(400)]
    src = write(tmp_path / "a.csv", "msisdn,name,tier\n" + "".join(
        f"86138{i:08d},{n},{'金银铜'[i % 3] if i % 11 else ''}\n" for i, n in enumerate(names)))
    meta = import_list(tmp_path / "d", "x", src)
    cols = {c["name"]: c for c in meta["columns"]}
    assert "categories" not in cols["name"] and cols["name"]["dtype"] == f"|S{max(len(n.encode()) for n in names)}"
    assert cols["tier"]["categories"] == 3 and cols["tier"]["missing"] == len(range(0, 400, 11))
    lst = ListStore(tmp_path / "d").get("x")
    assert lst.column("name").strings(np.arange(400)).tolist() == names
    assert lst.column("tier").strings([1, 2, 11]).tolist() == ["银", "铜", ""]


# --- lookups ---------------------------------------------------------------------------------------

def test_lookups_against_python_reference(tmp_path, monkeypatch):
    monkeypatch.setattr(source, "BLOCK", 8192)
    rnd = random.Random(11)
    msisdns = [f"86{rnd.randrange(10**10, 10**11)}" for _ in range(800)]
    imsis = [f"46000{rnd.randrange(10**10):010d}" for _ in range(800)] + ["001010000000001"]
    rows, by_msisdn, by_imsi = [], {}, {}
    for i in range(4000):
        m = rnd.choice(msisdns) if rnd.random() < 0.9 else ""
        s = rnd.choice(imsis) if rnd.random() < 0.8 or not m else ""
        rows.append((m, s, rnd.randrange(100)))
        if m:
            by_msisdn[m] = i                              # the last row wins
        if s:
            by_imsi[s] = i
    write(tmp_path / "a.csv", "msisdn,imsi,score\n" + "".join(f"{m},{s},{v}\n" for m, s, v in rows))
    import_list(tmp_path / "d", "x", tmp_path / "a.csv")
    lst = ListStore(tmp_path / "d").get("x")
    qm = [rnd.choice(msisdns) if rnd.random() < 0.7 else f"86{rnd.randrange(10**11)}" for _ in range(5000)]
    qs = [rnd.choice(imsis) if rnd.random() < 0.5 else "" for _ in range(5000)]
    qm[:3] = ["", "", "8"]
    want = [by_imsi.get(s, by_msisdn.get(m, -1)) for m, s in zip(qm, qs)]
    got = lst.rows(pack(qm), pack(qs))
    assert got.dtype == np.int64 and got.tolist() == want
    assert lst.column("score")[got].tolist() == [rows[r][2] if r >= 0 else -128 for r in want]
    assert lst.rows(pack(qm)).tolist() == [by_msisdn.get(m, -1) for m in qm]
    assert lst.rows(None, pack(["001010000000001"])).tolist() == [by_imsi.get("001010000000001", -1)]
    assert lst.rows(np.zeros(0, np.uint64), np.zeros(0, np.uint64)).tolist() == []


def test_pack_text_matches_probe_pack():
    rnd = random.Random(2)
    digits = ["".join(rnd.choice("0123456789") for _ in range(rnd.randint(1, 16))) for _ in range(500)]
    for same in (digits, ["0" * 15, "123456789012345"]):
        arr = pa.array(same)
        assert pack_text(arr, np.ones(len(same), bool)).tolist() == pack(same).tolist()
    arr = pa.array(digits)[7:40]                              # a slice: offsets start past 0
    take = np.arange(33) % 3 != 0
    assert pack_text(arr, take).tolist() == np.where(take, pack(digits[7:40]), NO_DIGITS).tolist()


# --- atomic replace --------------------------------------------------------------------------------

def test_replace_atomic_reader_keeps_old(tmp_path):
    def csv(path, plan, n):
        return write(path, "msisdn,plan\n" + "".join(f"86138{i:08d},{plan}{i}\n" for i in range(n)))

    import_list(tmp_path / "d", "x", csv(tmp_path / "a.csv", "旧", 100))
    store = ListStore(tmp_path / "d")
    old = store.get("x")
    rows = lookup(old, ["8613800000050"])
    assert store.reload() == [] and store.generation == 0
    import_list(tmp_path / "d", "x", csv(tmp_path / "b.csv", "新", 200))
    # The old generation's directory is gone; the reader holding it still reads it, whole.
    assert not old.path.exists()
    assert old.column("plan").strings(rows).tolist() == ["旧50"] and len(old) == 100
    assert store.get("x") is old                              # until it reloads
    assert store.reload() == ["x"] and store.generation == 1
    new = store.get("x")
    assert new.generation > old.generation and len(new) == 200
    assert new.column("plan").strings(lookup(new, ["8613800000150"])).tolist() == ["新150"]
    remove_list(tmp_path / "d", "x")
    assert store.reload() == ["x"] and store.names() == []
    with pytest.raises(ListError, match="no list 'x'"):
        store.get("x")


def test_readers_never_see_a_mix(tmp_path):
    """Imports replace a list over and over while readers load it: every load is one whole
    generation (its keys, rows and columns agree with its meta)."""
    d = tmp_path / "d"
    sizes = [50, 400, 120, 900, 10, 300]
    for i, n in enumerate(sizes):
        write(tmp_path / f"{i}.csv", "msisdn,gen\n" + "".join(f"86138{j:08d},{i}\n" for j in range(n)))
    import_list(d, "x", tmp_path / "0.csv")
    stop, seen, errors = threading.Event(), set(), []

    def read():
        while not stop.is_set():
            try:
                lst = ListStore(d).get("x")
                gen = lst.column("gen")[np.arange(len(lst))]
                assert len(set(gen.tolist())) == 1 and len(lst) == sizes[gen[0]] == len(lst.keys["msisdn"][0])
                seen.add(int(gen[0]))
            except Exception as e:                           # noqa: BLE001 - reported below
                errors.append(repr(e))

    readers = [threading.Thread(target=read) for _ in range(2)]
    for t in readers:
        t.start()
    for _ in range(3):
        for i in range(len(sizes)):
            import_list(d, "x", tmp_path / f"{i}.csv", force=True)      # sizes swing
    stop.set()
    for t in readers:
        t.join()
    assert errors == [] and len(seen) > 1


# --- the TAC table ---------------------------------------------------------------------------------

def test_tac_table(tmp_path):
    src = write(tmp_path / "tac.csv", "TAC,brand,model,capabilities,NFC\n"
                "35391110,华为,Mate 60 Pro,5G;VoLTE;esim,yes\n"
                "86837504,小米,Redmi Note 9,volte,no\n"
                "3539111,坏,短,5g,yes\n"
                "35425809,诺基亚,105,,\n")
    meta = import_tac(tmp_path / "d", src)
    assert meta["rows"] == 3 and meta["first_bad"] == [f"{src}:4: tac has 7 digits, not 8"]
    tac = ListStore(tmp_path / "d").tac()
    assert tac.capabilities == ["5g", "volte", "esim", "nfc"]
    brand, model, caps = tac.lookup(np.array([86837504, 35391110, 12345678, 35425809], np.uint32))
    assert brand.tolist() == ["小米", "华为", "", "诺基亚"] and model.tolist() == [
        "Redmi Note 9",
        "Mate 60 Pro",
        "",
        "105",
    ]
    five_g, volte, nfc = tac.capability_bit("5g"), tac.capability_bit("VoLTE"), tac.capability_bit("nfc")
    assert ((caps & five_g) != 0).tolist() == [False, True, False, False]
    assert ((caps & volte) != 0).tolist() == [True, True, False, False]
    assert ((caps & nfc) != 0).tolist() == [False, True, False, False]
    with pytest.raises(ListError, match="no capability 'wifi'"):
        tac.capability_bit("wifi")
    imei = pack(["353911101234563", "86837504123456", "", "1234"])
    assert imei_tac(imei).tolist() == [35391110, 86837504, 0, 0]
    with pytest.raises(ListError, match="needs the columns tac, brand and model; model missing"):
        import_tac(tmp_path / "d", write(tmp_path / "t2.csv", "tac,brand\n35391110,华为\n"))
    assert ListStore(tmp_path / "d").names() == []         # the TAC table is not a list


def test_sample_lists_import():
    """The files the README walks through."""
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        meta = import_list(d, "postpaid", ROOT / "rules/lists/postpaid.csv")
        assert meta["bad_rows"] == 0 and meta["rows"] == 16
        tac = import_tac(d, ROOT / "rules/lists/tac.csv")
        assert tac["bad_rows"] == 0 and "5g" in tac["capabilities"]
        broken = import_list(d, "broken", ROOT / "rules/lists/broken.csv", types={"age": "int"})
        assert broken["rows"] == 2 and broken["bad_rows"] == 4


# --- the command line ------------------------------------------------------------------------------

def cli(*args, env=None):
    return CliRunner().invoke(main, ["lists", *args], env=env)


def test_cli_import_ls_show_rm(tmp_path):
    d = str(tmp_path / "d")
    res = cli("import", "postpaid", str(ROOT / "rules/lists/postpaid.csv"), "--data", d)
    assert res.exit_code == 0, res.output
    assert "imported list postpaid: 16 rows, 0 bad rows skipped" in res.stdout
    assert "brand            text, 8 categories" in res.stdout
    res = cli("import-tac", str(ROOT / "rules/lists/tac.csv"), env={"TOUCHPOINT_DATA": d})
    assert res.exit_code == 0 and "imported the TAC table: 8 rows" in res.stdout
    res = cli("ls", "--data", d)
    assert res.exit_code == 0
    assert [line.split()[:2] for line in res.stdout.splitlines()[1:]] == [["postpaid", "16"], ["_tac", "8"]]
    res = cli("show", "postpaid", "--data", d, "--rows", "2")
    assert res.exit_code == 0
    assert "86138******78\t46000********90\t华为\t34\t女\t198.0\t全球通398\t北京" in res.stdout
    assert "8613812345678" not in res.stdout and "460001234567890" not in res.stdout
    res = cli("show", "postpaid", "--data", d, "--rows", "1", "--reveal")
    assert "8613812345678\t460001234567890\t华为" in res.stdout
    res = cli("show", "_tac", "--data", d, "--rows", "1")
    assert "35391110\t华为\tMate 60 Pro\t4g;5g;volte;vonr;nfc;esim;smartphone" in res.stdout
    assert cli("rm", "postpaid", "--data", d).exit_code == 0
    res = cli("show", "postpaid", "--data", d)
    assert res.exit_code == 1 and "no list 'postpaid'" in res.output
    assert cli("rm", "postpaid", "--data", d).exit_code == 1


def test_cli_bad_rows_and_errors(tmp_path):
    d = str(tmp_path / "d")
    lines = ["msisdn,age"] + [f"86138{i:08d},{i if i % 2 else 'x'}" for i in range(60)]
    src = write(tmp_path / "a.csv", "\n".join(lines) + "\n")
    res = cli("import", "x", str(src), "--data", d, "--type", "age=int")
    assert res.exit_code == 0
    assert res.stderr.splitlines()[0] == f"{src}:2: age: 'x' is not an integer"
    assert len(res.stderr.splitlines()) == 21 and "10 more bad rows (--errors FILE writes them all)" in res.stderr
    assert "imported list x: 30 rows, 30 bad rows skipped" in res.stdout
    res = cli("import", "x", str(src), "--data", d, "--type", "age=int", "--errors", str(tmp_path / "bad.txt"))
    assert len((tmp_path / "bad.txt").read_text().splitlines()) == 30 and "all in" in res.stderr
    res = cli("import", "x", str(src), "--data", d, "--type", "age=number")
    assert res.exit_code == 2 and "COLUMN=TYPE" in res.output
    empty = write(tmp_path / "e.csv", "msisdn,age\nnope,1\n")
    res = cli("import", "x", str(empty), "--data", d)
    assert res.exit_code == 1 and "e.csv:2: msisdn is not digits" in res.stderr and "unchanged" in res.stderr
    res = cli("import", "bad/name", str(src), "--data", d)
    assert res.exit_code == 2 and "not a list name" in res.output
    meta = json.loads((tmp_path / "d" / "lists" / "x" / "meta.json").read_text())
    assert meta["rows"] == 30 and meta["bad_rows"] == 30
