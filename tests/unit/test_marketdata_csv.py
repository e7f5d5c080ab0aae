"""football-data.co.uk CSV quirks: each test feeds the parser one quirk of the real files."""

from __future__ import annotations

from datetime import date, time

import numpy as np
import pytest

from edgeloop.marketdata.arrays import arrays_from_matches, load_csv_window
from edgeloop.marketdata.csv import event_id, parse_file, parse_lines, price_columns

OLD_HEADER = "Div,Date,HomeTeam,AwayTeam,FTHG,FTAG,FTR,B365H,B365D,B365A,BbMxH,BbAvH,BbMxD,BbAvD,BbMxA,BbAvA,BbAHh,BbMxAHH,BbMxAHA,,,"
NEW_HEADER = "Div,Date,Time,HomeTeam,AwayTeam,FTHG,FTAG,FTR,PSH,PSD,PSA,MaxH,MaxD,MaxA,AvgH,AvgD,AvgA,PSCH,PSCD,PSCA"


def write(tmp_path, name, text, encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def test_old_format_two_digit_years_crlf_blank_rows_and_empty_columns(tmp_path):
    text = "\r\n".join([
        OLD_HEADER,
        "E0,13/08/05,Aston Villa,Bolton,2,2,D,2.3,3.25,3,2.4,2.2,3.3,3.16,3.4,3.05,-0.25,2.1,1.9,,,",
        ",,,,,,,,,,,,,,,,,,,,,",
        "E0,14/08/05,Man United,Nott'm Forest,1,0,H,1.5,4,6,1.6,1.5,4.2,3.9,6.5,6.0,-1,2,1.8,,,",
    ]) + "\r\n"
    result = parse_file(write(tmp_path, "E0_2005-06.csv", text))
    assert result.problems == [] and result.blank_rows == 1
    a, b = result.matches
    assert (a.date, a.season, a.kickoff, a.result, a.home_goals) == (date(2005, 8, 13), "2005-06", None, "D", 2)
    assert a.prices["B365"] == (2.3, 3.25, 3.0)
    assert a.prices["MAX"] == (2.4, 3.3, 3.4) and a.prices["AVG"] == (2.2, 3.16, 3.05)
    assert set(a.prices) == {"B365", "MAX", "AVG"}  # the asian-handicap pair is not a 1X2 source
    assert b.event_id == "E0-2005-08-14-Man_United-Nott_m_Forest"
    assert b.line == 4


def test_new_format_bom_time_and_closing_prices(tmp_path):
    text = NEW_HEADER + "\n" + "E0,09/08/2019,20:00,Liverpool,Norwich,4,1,H,1.14,10.43,19.63,1.16,11,23,1.14,9.5,18.5,1.14,10.5,21\n"
    (m,) = parse_file(write(tmp_path, "x.csv", "\ufeff" + text)).matches
    assert m.league == "E0" and m.kickoff == time(20, 0) and m.season == "2019-20"
    assert m.event_id == "E0-2019-08-09-Liverpool-Norwich"
    assert m.prices["PS"] == (1.14, 10.43, 19.63) and m.prices["PSC"] == (1.14, 10.5, 21.0)
    assert m.prices["MAX"] == (1.16, 11.0, 23.0) and m.prices["AVG"] == (1.14, 9.5, 18.5)


def test_broken_rows_are_reported_with_file_and_line_and_the_rest_loads(tmp_path):
    rows = [
        "E0,09/08/2019,20:00,Liverpool,Norwich,4,1,H,1.14,10.43,19.63,,,,,,,,,",
        "E0,31/02/2019,20:00,A,B,1,1,D,2,3,4,,,,,,,,,",       # no such date
        "E0,10/08/2019,15:00,,Burnley,1,1,D,2,3,4,,,,,,,,,",  # no home team
        "E0,10/08/2019,15:00,C,D,x,1,D,2,3,4,,,,,,,,,",       # goals not a number
        "E0,10/08/2019,15:00,E,F,2,1,A,2,3,4,,,,,,,,,",       # result contradicts the score
        "E0,10/08/2019,15:00,G,H,0,0,D,abc,3,0.5,,,,,,,,,",   # bad prices are just absent
    ]
    result = parse_lines([NEW_HEADER + "\n"] + [r + "\n" for r in rows], source_file="f.csv")
    assert [m.home_team for m in result.matches] == ["Liverpool", "G"]
    assert [(p.file, p.line) for p in result.problems] == [("f.csv", 3), ("f.csv", 4), ("f.csv", 5), ("f.csv", 6)]
    assert "contradicts" in result.problems[-1].reason
    assert result.matches[1].prices["PS"] == (None, 3.0, None)


def test_season_of_a_file_that_runs_into_july_is_its_first_matchs_season():
    lines = [NEW_HEADER + "\n", "E0,09/08/2019,20:00,A,B,1,0,H,2,3,4,,,,,,,,,\n",
             "E0,26/07/2020,16:00,C,D,1,0,H,2,3,4,,,,,,,,,\n"]
    assert {m.season for m in parse_lines(lines, "no-season-in-name.csv").matches} == {"2019-20"}


def test_price_columns_discovers_books_added_in_later_seasons():
    cols = price_columns(["1XBH", "1XBD", "1XBA", "BFECH", "BFECD", "BFECA", "HTHG", "HTR", "AHh", "B365AHH", "B365AHA"])
    assert set(cols) == {"1XB", "BFEC"}


def test_event_id_is_stable():
    assert event_id("E0", date(2019, 8, 9), "Liverpool", "Norwich") == "E0-2019-08-09-Liverpool-Norwich"


def test_shipped_data_loads_without_problems_and_windows_are_read_only():
    w = load_csv_window(["E0"], date(2019, 8, 1), date(2020, 7, 31))
    assert len(w) == 380 and set(w.seasons) == {"2019-20"}
    assert w.price("PSC").shape == (380, 3) and not np.isnan(w.price("PSC")).any()
    assert np.isnan(w.price("NOPE")).all()
    assert (np.diff(w.kickoffs.astype("int64")) >= 0).all()  # sorted by kick-off
    with pytest.raises(ValueError):
        w.results[0] = 1
    assert not hasattr(w.pre_event(), "results")
    assert load_csv_window(["E0"], date(2019, 8, 1), date(2020, 7, 31)) is w  # cached per process


def test_select_keeps_arrays_aligned():
    w = load_csv_window(["D1"], date(2015, 7, 1), date(2016, 6, 30))
    sub = w.select(w.home_teams == "Bayern Munich")
    assert len(sub) == 17 and (sub.home_teams == "Bayern Munich").all()
    assert sub.price("B365").shape == (17, 3) and len(sub.results) == 17
    assert arrays_from_matches([]).results.shape == (0,)


def test_a_window_reads_only_the_season_files_it_can_overlap(tmp_path, monkeypatch):
    from edgeloop.marketdata import arrays

    row = "E0,{d},Arsenal,Chelsea,1,0,H,2.0,3.0,4.0,2.1,2.0,3.1,3.0,4.1,4.0,0,2,1.8,,,"
    for name, day in [("E0_2005-06.csv", "13/08/05"), ("E0_2019-20.csv", "26/07/20"), ("E0_2021-22.csv", "14/08/21"),
                      ("E0_extra.csv", "15/08/21")]:
        write(tmp_path, name, OLD_HEADER + "\n" + row.format(d=day) + "\n")
    parsed: list[str] = []
    monkeypatch.setattr(arrays, "parse_file", lambda path: parsed.append(path.name) or parse_file(path))
    arrays.clear_cache()
    # 2019-20 ran into July 2020: its file is still read for a window starting in July 2020.
    w = load_csv_window(["E0"], date(2020, 7, 1), date(2020, 7, 31), data_dir=tmp_path)
    assert list(w.dates) == [np.datetime64("2020-07-26")]
    assert sorted(parsed) == ["E0_2019-20.csv", "E0_extra.csv"]  # a name without a season is always read
    assert len(load_csv_window(["E0"], data_dir=tmp_path)) == 4
    arrays.clear_cache()


def test_parse_csv_files_parses_every_file_once_for_later_windows(tmp_path, monkeypatch):
    from edgeloop.marketdata import arrays

    write(tmp_path, "E0_2005-06.csv", OLD_HEADER + "\nE0,13/08/05,Aston Villa,Bolton,2,2,D,2.3,3.25,3,2.4,2.2,3.3,3.16,"
                                                   "3.4,3.05,-0.25,2.1,1.9,,,\n")
    write(tmp_path, "D1_2005-06.csv", OLD_HEADER.replace("E0", "D1") + "\nD1,13/08/05,Bayern,Hamburg,1,1,D,2,3,4,2,2,3,3,"
                                                                       "4,4,0,2,1.8,,,\n")
    arrays.clear_cache()
    assert arrays.parse_csv_files(data_dir=tmp_path) == 2
    monkeypatch.setattr(arrays, "parse_file", lambda path: pytest.fail(f"{path} parsed again"))
    assert len(load_csv_window(["D1"], date(2005, 7, 1), date(2006, 6, 30), data_dir=tmp_path)) == 1
    arrays.clear_cache()
