"""MovieLens 20M on tiny files in the official layout, and the `tags` content of 100K/1M."""

from __future__ import annotations

from pathlib import Path

import pytest

from multirec.datasets import movielens
from multirec.errors import DataError, DatasetError


def write_20m(folder: Path, genome: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ratings.csv").write_text("userId,movieId,rating,timestamp\n"
                                        "1,1,4.5,1112486027\n1,2,3.0,1112484676\n2,1,5.0,1112484819\n")
    (folder / "movies.csv").write_text(
        'movieId,title,genres\n1,Toy Story (1995),Adventure|Animation\n'
        '2,"American President, The (1995)",Comedy|Drama|Romance\n'
        '3,Unrated Film (2014),(no genres listed)\n', encoding="utf-8")
    (folder / "tags.csv").write_text(
        "userId,movieId,tag,timestamp\n1,1,Pixar,1\n2,1,pixar,2\n2,1,fun,3\n1,2,\"politics, US\",4\n"
        "2,3,Café,5\n", encoding="utf-8")
    if genome:
        (folder / "genome-tags.csv").write_text("tagId,tag\n1,toys\n2,politics\n3,animation\n")
        (folder / "genome-scores.csv").write_text(
            "movieId,tagId,relevance\n1,1,0.9\n1,2,0.1\n1,3,0.95\n2,1,0.05\n2,2,0.99\n2,3,0.2\n")
    return folder


def test_parses_the_20m_layout(tmp_path):
    ml = movielens.load("ml-20m", write_20m(tmp_path / "ml-20m"))
    d = ml.data
    assert (d.n_users, d.n_items, d.nnz) == (2, 3, 3)
    assert d.weights.tolist() == [4.5, 3.0, 5.0]
    text = d.content["text"]
    assert text[d.items.index(1)] == "Toy Story (1995). Genres: Adventure, Animation"
    assert text[d.items.index(2)] == "American President, The (1995). Genres: Comedy, Drama, Romance"
    assert text[d.items.index(3)] == "Unrated Film (2014)"  # "(no genres listed)" is no genre
    tags = d.content["tags"]
    # genres, then user tags lower-cased by count ("pixar" twice), no genome tags by default
    assert tags[d.items.index(1)] == ["Adventure", "Animation", "pixar", "fun"]
    assert tags[d.items.index(2)] == ["Comedy", "Drama", "Romance", "politics, us"]
    assert tags[d.items.index(3)] == ["café"]
    assert d.user_features is None and list(ml.users["user"]) == [1, 2]
    names = d.item_features.names
    assert {names[j] for j in d.item_features.matrix[d.items.index(1)].indices} == {
        "genre:Adventure", "genre:Animation", "decade:1990"}


def test_20m_genome_tags(tmp_path):
    folder = write_20m(tmp_path / "ml-20m")
    tags = movielens.load("ml-20m", folder, genome_tags=2).data.content["tags"]
    assert tags[0] == ["Adventure", "Animation", "pixar", "fun", "animation", "toys"]
    assert tags[1][-2:] == ["politics", "animation"]
    folder_no_genome = write_20m(tmp_path / "bare" / "ml-20m", genome=False)
    assert movielens.load("ml-20m", folder_no_genome, genome_tags=5).data.content["tags"][0] == [
        "Adventure", "Animation", "pixar", "fun"]
    with pytest.raises(DataError, match="genome_tags.*-1"):
        movielens.load("ml-20m", folder, genome_tags=-1)


def test_20m_missing_files_and_bad_layout(tmp_path, monkeypatch):
    with pytest.raises(DatasetError, match="ratings.csv") as err:
        movielens.load("ml-20m", tmp_path)
    assert "https://files.grouplens.org/datasets/movielens/ml-20m.zip" in str(err.value)
    monkeypatch.setenv("MULTIREC_ML20M", str(tmp_path / "nowhere"))
    with pytest.raises(DatasetError, match=r"\$MULTIREC_ML20M"):
        movielens.load("ml-20m")
    folder = write_20m(tmp_path / "ml-20m")
    (folder / "ratings.csv").write_text("userId,movieId,rating,timestamp\nx,y,z,w\n")
    with pytest.raises(DatasetError, match="official layout"):
        movielens.load("ml-20m", folder)


def test_100k_and_1m_tags_are_the_genres(tmp_path):
    from test_movielens import write_1m, write_100k

    d = movielens.load("ml-100k", write_100k(tmp_path / "ml-100k")).data
    assert d.content["tags"][d.items.index(10)] == ["Animation", "Children's", "Comedy"]
    assert d.content["text"][d.items.index(10)] == "Toy Story (1995). Genres: Animation, Children's, Comedy"
    d = movielens.load("ml-1m", write_1m(tmp_path / "ml-1m")).data
    assert d.content["tags"][d.items.index(7)] == ["Action", "Sci-Fi"]
