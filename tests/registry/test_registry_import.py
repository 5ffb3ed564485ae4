"""`person import`: streamed, every bad row reported, never blocking or half-writing the good ones."""

from __future__ import annotations

import csv

import pytest
from registry_helpers import citizen_id

from sbcard.domain.errors import InvalidInput, NotFound
from sbcard.services.people import imports as person_import
from sbcard.services.people.registry import add_person, get_person, import_persons

HEADER = "citizen_id,name,insurance,retired,ethnicity,phone,region,insured_region,guardian_id,guardian_relation\n"
A = citizen_id("120103", "19900101", 123)
B = citizen_id("120104", "19851231", 246)
C = citizen_id("130102", "20200601", 11)
D = citizen_id("120110", "19600202", 35)


def write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return path


def report(path):
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def test_good_rows_go_in_and_bad_ones_are_reported_by_line_and_column(world, clock, tmp_path):
    already = citizen_id("110105", "19700101", 1)
    add_person(world.region("bj"), citizen_id=already, name="李娜", region="110105", insurance="employee",
               now=clock.now())
    source = write(tmp_path / "people.csv", HEADER + "\n".join([
        f"{A},张三,employee,0,01,13812345678,,,,",                       # 2 ok
        f"{B},李四,居民,否,,,120104,,,",                                  # 3 ok (Chinese words)
        f"{A[:-1]}0,王五,employee,,,,,,,",                                # 4 bad check character
        f"{D},,employee,,,,,,,",                                          # 5 empty name
        f"{C},赵小六,resident,,,,130102,120103,{A},父亲",                 # 6 ok: lives in Hebei, insured here
        f"{A},张三,employee,,,,,,,",                                      # 7 same person as line 2
        f"{already},李娜,employee,,,,,,,",                                # 8 registered in Beijing
        f"{D},赵六,employee,maybe,,,,,,",                                 # 9 bad retired
        f"{D},赵六,employee,1,99,,,,,",                                   # 10 bad ethnicity
        f"{D},赵六,employee,1,,,,110105,,",                               # 11 insured elsewhere
        f"{D},赵六,employee,1",                                           # 12 too few fields
        "",                                                               # blank line: not a row
        f"{D},赵六,employee,1,,,,,,",                                     # 14 ok
    ]) + "\n")
    errors = tmp_path / "errors.csv"

    result = import_persons(world, source, region="120103", now=clock.now(), error_report_path=errors)

    assert (result.rows, result.imported, result.rejected, result.node) == (12, 4, 8, "tj")
    assert [(r["line"], r["column"], r["code"]) for r in report(errors)] == [
        ("4", "citizen_id", "citizen_id.check_char"),
        ("5", "name", "name.empty"),
        ("7", "citizen_id", "person.duplicate"),
        ("8", "citizen_id", "person.exists"),
        ("9", "retired", "person.retired"),
        ("10", "ethnicity", "person.ethnicity"),
        ("11", "insured_region", "person.other_region"),
        ("12", "", "import.shape"),
    ]
    assert "the same person is on line 2" in report(errors)[2]["reason"]
    assert already not in errors.read_text(encoding="utf-8")  # the report holds no personal data
    tj = world.region("tj")
    assert tj["persons"].count == tj["enrolments"].count == 4
    assert get_person(tj, B)["insurance"] == "resident"
    assert get_person(tj, C)["guardians"] == [{"citizen_id": A, "relation": "父亲"}]
    assert get_person(tj, C)["household_region"] == "130102"
    assert get_person(tj, D)["retired"] is True
    [entry] = [e for e in tj["audit_log"].rows if e["action"] == "person.import"]
    assert entry["subject"] == "people.csv"


def test_a_row_is_never_half_written_even_when_the_database_objects(world, clock, tmp_path, monkeypatch):
    """Another process registers a person between the checks and the chunk: only that row is lost."""
    source = write(tmp_path / "p.csv", HEADER + f"{A},张三,employee,,,,,,,\n{B},李四,employee,,,,,,,\n")
    tj = world.region("tj")
    real_store = person_import._store

    def racing_store(db, records, now, errors):
        add_person(tj, citizen_id=B, name="李四", region="120104", insurance="resident", now=clock.now())
        return real_store(db, records, now, errors)

    monkeypatch.setattr(person_import, "_store", racing_store)
    result = import_persons(world, source, region="120103", now=clock.now(), error_report_path=tmp_path / "e.csv")

    assert (result.imported, result.rejected) == (1, 1)
    assert [r["code"] for r in report(tmp_path / "e.csv")] == ["person.conflict"]
    assert get_person(tj, B)["insurance"] == "resident"  # the other process's row, untouched
    assert tj["persons"].count == tj["enrolments"].count == 2


def test_chunks_commit_as_they_go_and_a_second_run_adds_only_the_rest(world, clock, tmp_path, monkeypatch):
    monkeypatch.setattr(person_import, "CHUNK_ROWS", 2)
    ids = [citizen_id("120103", "19900101", n) for n in range(100, 105)]
    source = write(tmp_path / "p.csv", HEADER + "".join(f"{i},张三,employee,,,,,,,\n" for i in ids))
    first = import_persons(world, source, region="120103", now=clock.now())
    assert (first.rows, first.imported, first.error_report) == (5, 5, None)
    again = import_persons(world, source, region="120103", now=clock.now())
    assert (again.imported, again.rejected) == (0, 5)


@pytest.mark.parametrize(
    ("content", "code", "words"),
    [
        ("name,insurance\n", "import.columns", "lacks the required column(s) citizen_id"),
        ("citizen_id,name,insurance,colour\n", "import.columns", "unknown column(s) colour"),
        ("citizen_id,name,name,insurance\n", "import.columns", "name appear twice"),
        ("", "import.columns", "the first line must be the header"),
        ("citizen_id," + "9" * 200_000 + "\n", "import.csv", "the header is not readable as CSV"),
    ],
)
def test_a_header_that_cannot_work_refuses_the_whole_file(world, clock, tmp_path, content, code, words):
    source = write(tmp_path / "p.csv", content + f"{A},张三,employee\n")
    with pytest.raises(InvalidInput) as exc:
        import_persons(world, source, region="120103", now=clock.now())
    assert exc.value.code == code and words in exc.value.message and exc.value.field == "FILE"
    assert world.region("tj")["persons"].count == 0


def test_a_bom_and_crlf_are_fine_and_bad_bytes_fail_only_their_row(world, clock, tmp_path):
    text = "\ufeff" + HEADER.replace("\n", "\r\n") + f"{A},张三,employee,,,,,,,\r\n"
    raw = text.encode("utf-8") + f"{B},".encode() + "李四".encode("gbk") + b",employee,,,,,,,\r\n"
    source = write(tmp_path / "p.csv", raw)
    result = import_persons(world, source, region="120103", now=clock.now(), error_report_path=tmp_path / "e.csv")
    assert (result.imported, result.rejected) == (1, 1)
    assert [r["code"] for r in report(tmp_path / "e.csv")] == ["import.encoding"]


def test_a_line_past_the_csv_field_limit_fails_only_its_row(world, clock, tmp_path):
    source = write(tmp_path / "p.csv", HEADER + f"{A},{'张' * 200_000},employee,,,,,,,\n{B},李四,employee,,,,,,,\n")
    result = import_persons(world, source, region="120103", now=clock.now(), error_report_path=tmp_path / "e.csv")
    assert (result.imported, result.rejected) == (1, 1)
    [rejected] = report(tmp_path / "e.csv")
    assert rejected["code"] == "import.shape" and "not readable as CSV" in rejected["reason"]


def test_a_missing_file_and_a_bad_region(world, clock, tmp_path):
    with pytest.raises(NotFound):
        import_persons(world, tmp_path / "none.csv", region="120103", now=clock.now())
    with pytest.raises(NotFound) as exc:
        import_persons(world, tmp_path / "none.csv", region="120199", now=clock.now())
    assert exc.value.field == "--region"


def test_the_cli_imports_and_reports(sbcard, home, tmp_path):
    assert sbcard("operator", "add", "tj-clerk", "--name", "周敏", "--role", "counter", "--region", "120103")[0] == 0
    source = write(tmp_path / "people.csv", HEADER + f"{A},张三,employee,,,,,,,\n{A[:-1]}0,王五,employee,,,,,,,\n")
    code, out, err, data = sbcard("person", "import", str(source), "--region", "120103", "--operator", "tj-clerk",
                                  "--json")
    assert code == 0, err
    assert data == {"file": str(source), "region": "120103", "node": "tj", "rows": 2, "imported": 1, "rejected": 1,
                    "errors_file": str(tmp_path / "people.errors.csv")}
    assert [r["line"] for r in report(tmp_path / "people.errors.csv")] == ["3"]
    code, out, err, _ = sbcard("person", "import", str(source), "--region", "120103", "--operator", "tj-clerk")
    assert code == 0 and "Imported 0 of 2 rows" in out and "2 rows rejected" in err
    code, _, err, _ = sbcard("person", "import", str(tmp_path / "nothing.csv"), "--region", "120103",
                             "--operator", "tj-clerk")
    assert code == 2 and err.startswith("error: FILE: no such file")
