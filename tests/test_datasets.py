from lmmbook.datasets import mrode_example_3_1


def test_mrode_3_1_pedigree_is_ordered_and_complete():
    df = mrode_example_3_1()
    assert df.index.tolist() == list(range(1, 9))
    for animal, row in df.iterrows():  # parents precede offspring
        assert row["sire"] < animal and row["dam"] < animal
    assert df["y"].notna().sum() == 5
    assert df.loc[df["y"].notna(), "sex"].notna().all()
