import numpy as np

from kgattr.extract.copying import TextCopier, copy_gate, fill, shape
from kgattr.io.catalog import Product


def _part(i: int, ohms: int, amps: int) -> Product:
    return Product(f"P{i:04d}", f"RX{i:04d} inductor",
                   f"{amps}mA {ohms}mΩ shielded ±20% SMD", ("Parts", "Inductors"),
                   {"Resistance": f"{ohms}mR", "Current": f"{amps} mA", "Tolerance": "±20%"})


def test_shapes_keep_numbers_as_written():
    assert shape("450mΩ@100MHz") == ("#mΩ@#MHz", ("450", "100"))
    assert fill("# R @ # MHz", ("0603", "1.5")) == "0603 R @ 1.5 MHz"


def test_a_value_never_seen_is_written_in_the_attribute_s_form_from_the_text():
    rng = np.random.default_rng(0)
    products = [_part(i, int(rng.integers(10, 900)), int(rng.integers(10, 900))) for i in range(200)]
    copier = TextCopier().fit(products, ["Resistance", "Current", "Tolerance"])
    new = Product("NEW", "RX9999 inductor", "977mA 1234mΩ shielded ±20% SMD", ("Parts", "Inductors"), {})
    found = copier.copies(new, ["Resistance", "Current"])
    assert found["Resistance"].value == "1234mR" and found["Current"].value == "977 mA"
    span = found["Current"]
    assert new.description[span.start:span.end] == "977mA" and span.field == "description"
    assert found["Resistance"].confidence > 0.9
    again = TextCopier.from_state(copier.get_state())
    assert again.copies(new, ["Resistance", "Current"]) == found


def test_out_of_fold_copies_are_measured_without_the_product_s_own_rule():
    products = [_part(i, 100 + i, 200 + i) for i in range(50)]
    products.append(Product("ODD", "odd", "Q7 weird", ("Parts", "Inductors"), {"Tolerance": "Q7"}))
    copier = TextCopier().fit(products, ["Resistance", "Current", "Tolerance"])
    assert (50, "Tolerance") not in copier.heldout_          # its rule comes from itself alone
    copy, correct = copier.heldout_[0, "Current"]
    assert correct and copy.value == "200 mA"


def test_the_gate_takes_copies_only_where_they_do_not_cost_held_out_cells():
    products = [_part(i, 100 + i, 200 + i) for i in range(60)]
    copier = TextCopier().fit(products, ["Resistance", "Current"])
    rows = np.arange(20)
    names = ["Resistance"] * 10 + ["Current"] * 10
    confidence = np.full(20, 0.5)
    correct = np.array([False] * 10 + [True] * 10)
    enabled, used, conf, right = copy_gate(copier, rows, names, confidence, correct)
    assert "Resistance" in enabled
    assert right[:10].all() and (conf[:10] > 0.5).all() and used[:10].all()


def test_units_convert_and_one_quantity_is_one_value():
    products = [Product(f"C{i}", f"cap {i}", f"{i / 10:g}uF 50V X7R", ("Parts", "Capacitors"),
                        {"Capacitance": f"{i * 100}nF"}) for i in range(1, 80)]
    copier = TextCopier().fit(products, ["Capacitance"])
    new = Product("N", "cap", "0.47uF 25V", ("Parts", "Capacitors"), {})
    assert copier.copies(new, ["Capacitance"])["Capacitance"].value == "470nF"
    drives = [Product(f"D{i}", f"drive {i}", f"{n} Terabytes USB", ("Storage",), {"capacity": f"{n}TB"})
              for i, n in enumerate([1, 2, 4, 8, 16] * 10)]
    copier = TextCopier().fit(drives, ["capacity"])
    assert copier.copies(Product("N", "drive", "2 terabytes", ("Storage",), {}), ["capacity"])["capacity"].value == "2TB"


def test_a_conversion_is_trusted_only_as_far_as_the_catalog_writes_values_so():
    # most currents are written as the text states them; one quantity is known in mA, whose text says uA
    products = [Product(f"Q{n}", "LDO regulator", f"{n}uA", ("Parts", "LDO"), {"Quiescent current": f"{n}uA"})
                for n in range(101, 141)]
    products += [Product(f"H{i}", "LDO regulator", "500uA", ("Parts", "LDO"), {"Quiescent current": "0.5mA"})
                 for i in range(10)]
    copier = TextCopier().fit(products, ["Quiescent current"])
    new = [Product(f"N{n}", "LDO regulator", f"{n}uA", ("Parts", "LDO"), {}) for n in (730, 500)]
    found = [copier.copies(p, ["Quiescent current"])["Quiescent current"].value for p in new]
    # a product's own value never makes its quantity known: converting 101uA into 0.101mA was wrong there
    assert found == ["730uA", "0.5mA"]
    again = TextCopier.from_state(copier.get_state())
    wanted = ["Quiescent current"]
    assert [again.copies(p, wanted) for p in new] == [copier.copies(p, wanted) for p in new]


def test_codes_never_seen_are_copied_by_their_character_classes():
    products = [Product(f"M{i}", f"Acme {code}{i:03d} Drive", "", ("Storage",), {"model_number": f"{code}{i:03d}"})
                for i, code in enumerate(["STHK", "WDX", "QZ"] * 30)]
    copier = TextCopier().fit(products, ["model_number"])
    new = Product("N", "Acme PLM777 Drive", "", ("Storage",), {})
    assert copier.copies(new, ["model_number"])["model_number"].value == "PLM777"


def test_a_copier_whose_rules_never_fire_keeps_no_copies():
    products = [Product("a", "Red shirt", "", ("x",), {"colour": "Blue"}),
                Product("b", "Green top", "", ("x",), {"colour": "Pink"})]
    for heldout in (None, [(0, "colour")]):
        copier = TextCopier().fit(products, ["colour"], heldout)
        assert copier.heldout_ == {} and copier.copies(products[0], ["colour"]) == {}
