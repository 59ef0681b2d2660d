

@pytest.mark.slow
def test_train_from_shards_with_batch_augmentation(packed, tmp_path):
    """End to end: ``forensics train`` reads the packed manifest and augments on the batch."""
    from tests.forensics.commands.test_train import train

    assert train(packed, tmp_path / "run", "train.epochs=1", "data.augment.device=gpu",
                 "data.augment.jpeg_p=1.0") == 0
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["test"]["video"]["n"] == 12
