"""Parameters sit where member runs really differ, multi-word values included, and titles never quote a member
run's value (issue 11 item 4). Member texts are written by hand for these tests (an ocean-data domain the miner's
benchmarks do not use)."""

from skill_pipeline.mining.naming import skill_title
from skill_pipeline.mining.templates import extract_task_template, request_template

REGIONS = ["North Atlantic", "Indian Ocean", "Southern Ocean", "Arctic", "North Pacific"]


def _title(template: str) -> str:
    return skill_title(template, {})


def test_a_value_every_run_of_the_main_wording_shares_is_a_parameter_when_another_wording_varies_it() -> None:
    # The most common wording (5 runs) always asks about sea surface temperature; a paraphrase (3 runs) asks about
    # three different quantities, so the quantity is a parameter, not part of the request's words.
    runs = {f"a{i}": f"Compute the monthly mean of sea surface temperature for the {region} basin and save a table"
            for i, region in enumerate(REGIONS)}
    runs |= {f"b{i}": f"Chart how {quantity} changes across the {region} basin each month"
             for i, (quantity, region) in enumerate([("sea surface temperature", "Arctic"),
                                                     ("chlorophyll concentration", "Indian Ocean"),
                                                     ("mixed layer depth", "North Pacific")])}
    task = request_template(runs)
    assert task.template.startswith("Compute the monthly mean of {")
    assert "temperature" not in task.template
    title = _title(task.template)
    assert "temperature" not in title and "Atlantic" not in title
    assert title.startswith("Compute the monthly mean of a")
    quantity = next(name for name, value in task.values["a0"].items() if value == "sea surface temperature")
    assert task.values["a1"][quantity] == "sea surface temperature"
    assert task.values["b1"][quantity] == "chlorophyll concentration"  # the paraphrase's value, same parameter
    assert task.values["b2"][quantity] == "mixed layer depth"
    region = next(name for name, value in task.values["a0"].items() if value == "North Atlantic")
    assert task.values["a2"][region] == "Southern Ocean"


def test_a_value_most_members_share_is_still_a_parameter_when_one_member_differs() -> None:
    # Four of five runs of one wording measure wind speed, one relative humidity: the words differ between members,
    # so they are a parameter (the 80% agreement that keeps wording words constant does not make them wording).
    quantities = ["wind speed", "wind speed", "wind speed", "relative humidity", "wind speed"]
    runs = {f"r{i}": f"Estimate the 95th percentile of {quantity} at buoy {46000 + 17 * i} and flag outliers"
            for i, quantity in enumerate(quantities)}
    task = request_template(runs)
    assert "wind" not in task.template and "humidity" not in task.template
    values = {rid: set(v.values()) for rid, v in task.values.items()}
    assert "relative humidity" in values["r3"] and "wind speed" in values["r0"]
    assert "wind" not in _title(task.template)


def test_a_multi_word_value_is_one_parameter_bounded_by_the_common_words() -> None:
    topics = ["marine heatwaves", "ocean acidification in coral reefs", "sea ice decline", "El Nino teleconnections"]
    runs = {f"r{i}": f"Write a two-page briefing on {topic} for policy makers" for i, topic in enumerate(topics)}
    task = extract_task_template(runs)
    assert task.template == "Write a two-page briefing on {topic} for policy makers"
    assert [task.values[f"r{i}"]["topic"] for i in range(4)] == topics
    assert _title(task.template) == "Write a two-page briefing on a topic for policy makers"


def test_words_the_request_keeps_are_not_parameters() -> None:
    # Every run shares "temperature anomaly map" and no run of any wording takes it as a value: it stays text.
    runs = {f"r{i}": f"Draw the temperature anomaly map for {year} and annotate the {region} basin"
            for i, (year, region) in enumerate(zip([1998, 2005, 2010, 2016], REGIONS))}
    task = request_template(runs)
    assert task.template.startswith("Draw the temperature anomaly map for {")


def test_a_second_parameter_of_one_role_reads_as_another_not_as_a_number() -> None:
    assert _title("Compare the {basin} basin with {basin_2} over {n_years} years") == \
        "Compare the basin with another basin over years"
    assert _title("Map {subject} in {subject_2} each month") == "Map a subject in another subject each month"
