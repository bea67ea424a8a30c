"""Parameter trees: structure-preserving maps, flatten/unflatten, save/load."""
import dataclasses
import io
import os
import tempfile
from collections import namedtuple

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from diffsrc.tree import (TreeDef, global_norm, load, save, tree_add, tree_allclose,
                          tree_count, tree_flatten, tree_leaves, tree_map, tree_paths,
                          tree_scale, tree_sub, tree_unflatten, tree_zeros_like)


@dataclasses.dataclass
class Layer:
    W: np.ndarray
    b: np.ndarray


@dataclasses.dataclass(frozen=True)
class Model:
    layers: list
    scale: float
    cache: object = dataclasses.field(default=None, init=False)


Pair = namedtuple("Pair", ["first", "second"])


def make_tree():
    return {
        "layers": [Layer(np.arange(6.0).reshape(2, 3), np.zeros(3)),
                   Layer(np.ones((3, 1), np.float32), np.array([0.5], np.float32))],
        "head": (np.array([1.0, -2.0]), 3.5),
        "pair": Pair(np.float32(2.0), None),
    }


# --------------------------------------------------------------- map / flatten

def test_tree_map_keeps_structure_and_applies_to_every_leaf():
    tree = make_tree()
    out = tree_map(lambda x: x * 2, tree)
    assert isinstance(out["layers"][0], Layer)
    assert isinstance(out["head"], tuple) and not hasattr(out["head"], "_fields")
    assert isinstance(out["pair"], Pair) and out["pair"].second is None
    np.testing.assert_array_equal(out["layers"][0].W, np.arange(6.0).reshape(2, 3) * 2)
    assert out["head"][1] == 7.0
    assert out["pair"].first == np.float32(4.0)


def test_tree_map_zips_several_trees_by_key_not_order():
    a = {"x": 1.0, "y": np.array([1.0, 2.0])}
    b = {"y": np.array([10.0, 20.0]), "x": 5.0}
    out = tree_map(lambda p, q: p + q, a, b)
    assert list(out) == ["x", "y"]
    assert out["x"] == 6.0
    np.testing.assert_array_equal(out["y"], [11.0, 22.0])


def test_tree_map_does_not_mutate_inputs():
    tree = make_tree()
    before = tree_map(np.copy, tree)
    tree_map(lambda x, y: x + y, tree, tree)
    tree_add(tree, tree)
    tree_scale(tree, 3.0)
    tree_zeros_like(tree)
    assert tree_allclose(tree, before)


def test_dict_key_order_preserved():
    tree = {"z": 1.0, "a": 2.0, "m": {"q": 3.0, "b": 4.0}}
    out = tree_map(lambda x: x, tree)
    assert list(out) == ["z", "a", "m"] and list(out["m"]) == ["q", "b"]
    leaves, _ = tree_flatten(tree)
    assert leaves == [1.0, 2.0, 3.0, 4.0]


@pytest.mark.parametrize("a, b, exc, fragment", [
    ({"W": 1.0, "b": 2.0}, {"W": 1.0, "c": 2.0}, ValueError, "lacks ['b']"),
    ({"l": [1.0, 2.0]}, {"l": [1.0]}, ValueError, "at l"),
    ({"l": [1.0]}, {"l": (1.0,)}, TypeError, "tuple at l"),
    ({"x": 1.0}, {"x": [1.0]}, TypeError, "list at x where tree 0 has a leaf"),
    ({"x": [1.0]}, {"x": 1.0}, TypeError, "leaf at x"),
    (Pair(1.0, 2.0), (1.0, 2.0), TypeError, "namedtuple Pair"),
])
def test_tree_map_mismatch_errors_name_the_path(a, b, exc, fragment):
    with pytest.raises(exc) as info:
        tree_map(lambda x, y: x, a, b)
    assert fragment in str(info.value)


def test_different_dataclasses_do_not_match():
    @dataclasses.dataclass
    class Other:
        W: np.ndarray
        b: np.ndarray
    with pytest.raises(TypeError, match="dataclass Other"):
        tree_map(lambda x, y: x, Layer(1.0, 2.0), Other(1.0, 2.0))


def test_dataclass_rebuilt_from_init_fields_only():
    m = Model(layers=[Layer(np.ones(2), np.zeros(2))], scale=2.0)
    leaves, treedef = tree_flatten(m)
    assert len(leaves) == 3 and treedef.kind == "dataclass"
    out = tree_unflatten(treedef, [10 * np.ones(2), np.ones(2), 5.0])
    assert isinstance(out, Model) and out.scale == 5.0 and out.cache is None
    np.testing.assert_array_equal(out.layers[0].W, [10.0, 10.0])


def test_none_is_an_empty_subtree():
    tree = {"a": None, "b": [None, 1.0]}
    leaves, treedef = tree_flatten(tree)
    assert leaves == [1.0]
    assert tree_unflatten(treedef, [2.0]) == {"a": None, "b": [None, 2.0]}
    with pytest.raises(TypeError):
        tree_map(lambda x, y: x, tree, {"a": 1.0, "b": [None, 1.0]})


def test_unflatten_checks_leaf_count():
    _, treedef = tree_flatten([1.0, 2.0])
    with pytest.raises(ValueError, match="2 leaves but 3"):
        tree_unflatten(treedef, [1.0, 2.0, 3.0])


def test_treedef_equality_and_repr():
    _, t1 = tree_flatten({"a": [1.0, 2.0]})
    _, t2 = tree_flatten({"a": [np.ones(3), 5]})
    _, t3 = tree_flatten({"a": (1.0, 2.0)})
    assert t1 == t2 and hash(t1) == hash(t2)
    assert t1 != t3
    assert repr(t1) == "{'a': [*, *]}"
    assert isinstance(t1, TreeDef) and t1.num_leaves == 2


def test_paths_count_and_leaves():
    tree = make_tree()
    assert tree_paths(tree) == ["layers/0/W", "layers/0/b", "layers/1/W", "layers/1/b",
                                "head/0", "head/1", "pair/first"]
    assert tree_count(tree) == 6 + 3 + 3 + 1 + 2 + 1 + 1
    assert len(tree_leaves(tree)) == 7


def test_zeros_like_keeps_shapes_dtypes_and_python_types():
    z = tree_zeros_like(make_tree())
    assert z["layers"][1].W.dtype == np.float32 and z["layers"][1].W.shape == (3, 1)
    assert not np.any(z["layers"][0].W)
    assert type(z["head"][1]) is float and z["head"][1] == 0.0
    assert type(z["pair"].first) is np.float32


def test_arithmetic_helpers():
    a = {"x": np.array([1.0, 2.0]), "y": 3.0}
    b = {"x": np.array([0.5, 0.5]), "y": 1.0}
    assert tree_allclose(tree_add(a, b), {"x": np.array([1.5, 2.5]), "y": 4.0})
    assert tree_allclose(tree_sub(a, b), {"x": np.array([0.5, 1.5]), "y": 2.0})
    assert tree_allclose(tree_scale(a, -2.0), {"x": np.array([-2.0, -4.0]), "y": -6.0})


def test_global_norm_is_norm_of_concatenated_leaves():
    tree = make_tree()
    flat = np.concatenate([np.ravel(np.asarray(x, np.float64)) for x in tree_leaves(tree)])
    assert global_norm(tree) == pytest.approx(np.linalg.norm(flat))
    big = {"w": np.full(10**6, 1e-3, np.float32)}
    assert global_norm(big) == pytest.approx(1.0, rel=1e-6)


def test_tree_allclose_detects_values_shapes_and_structure():
    a = {"x": np.array([1.0, 2.0])}
    assert tree_allclose(a, {"x": np.array([1.0, 2.0 + 1e-9])})
    assert not tree_allclose(a, {"x": np.array([1.0, 2.1])})
    assert not tree_allclose({"x": np.ones(3)}, {"x": np.ones((1, 3))})
    assert not tree_allclose(a, {"y": np.array([1.0, 2.0])})
    assert not tree_allclose(a, [np.array([1.0, 2.0])])


leaves_st = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.integers(-10, 10).map(lambda n: np.arange(abs(n) + 1, dtype=np.float32) * n),
)
trees_st = st.recursive(
    leaves_st,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.lists(children, max_size=3).map(tuple),
        st.dictionaries(st.text(max_size=4), children, max_size=3),
    ),
    max_leaves=8,
)


@settings(max_examples=60, deadline=None)
@given(trees_st)
def test_flatten_unflatten_roundtrip(tree):
    leaves, treedef = tree_flatten(tree)
    rebuilt = tree_unflatten(treedef, leaves)
    assert tree_allclose(rebuilt, tree)
    assert tree_flatten(rebuilt)[1] == treedef
    assert len(tree_paths(tree)) == len(leaves)


# ------------------------------------------------------------------ save / load

def roundtrip(tree, **kw):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "tree.npz")
        save(path, tree)
        return load(path, **kw)


def test_save_load_roundtrip_nested_containers_and_leaf_types(tmp_path):
    tree = make_tree()
    tree["count"] = 7
    tree["flag"] = True
    tree[3] = {"": np.array([1, 2], np.int16), "a/b%c": 2.5}
    path = tmp_path / "ckpt.npz"
    save(path, tree)
    out = load(path)
    assert list(out) == list(tree)
    assert isinstance(out["layers"][1], Layer) and isinstance(out["pair"], Pair)
    assert out["pair"].second is None
    assert type(out["count"]) is int and out["count"] == 7
    assert type(out["flag"]) is bool and out["flag"] is True
    assert type(out["head"][1]) is float and isinstance(out["head"], tuple)
    assert type(out["pair"].first) is np.float32
    assert out["layers"][1].W.dtype == np.float32
    assert out[3][""].dtype == np.int16
    assert tree_allclose(out, tree)


def test_saved_file_is_plain_npz_with_path_keys(tmp_path):
    path = tmp_path / "plain"
    save(path, {"layers": [{"W": np.eye(2)}]})
    assert path.exists()  # exactly the name given, no ".npz" appended
    with np.load(path, allow_pickle=False) as data:
        assert "layers/0/W" in data.files
        np.testing.assert_array_equal(data["layers/0/W"], np.eye(2))


def test_save_load_dataclass_model_and_root_leaf():
    m = Model(layers=[Layer(np.ones((2, 2)), np.zeros(2))], scale=0.5)
    out = roundtrip(m)
    assert isinstance(out, Model) and out.scale == 0.5
    assert tree_allclose(out, m)
    np.testing.assert_array_equal(roundtrip(np.arange(3)), np.arange(3))


@settings(max_examples=25, deadline=None)
@given(trees_st)
def test_save_load_roundtrip_property(tree):
    out = roundtrip(tree)
    assert tree_allclose(out, tree)
    assert tree_flatten(out)[1] == tree_flatten(tree)[1]


def test_local_dataclass_needs_like():
    @dataclasses.dataclass
    class Local:
        w: np.ndarray

    buf = io.BytesIO()
    save(buf, Local(np.ones(2)))
    buf.seek(0)
    with pytest.raises(ValueError, match="like="):
        load(buf)
    buf.seek(0)
    out = load(buf, like=Local(np.zeros(2)))
    assert isinstance(out, Local) and tree_allclose(out, Local(np.ones(2)))
    buf.seek(0)
    with pytest.raises(ValueError, match="differs"):
        load(buf, like={"w": np.zeros(2)})


@pytest.mark.parametrize("tree, exc, fragment", [
    ({"s": "text"}, TypeError, "type str at s"),
    ({"o": np.array([1, None], dtype=object)}, TypeError, "object array at o"),
    ({0: 1.0, "0": 2.0}, ValueError, "same stored name"),
    ({(1, 2): 1.0}, TypeError, "dict key (1, 2)"),
])
def test_save_rejects_what_it_cannot_store_without_pickle(tmp_path, tree, exc, fragment):
    with pytest.raises(exc) as info:
        save(tmp_path / "bad.npz", tree)
    assert fragment in str(info.value)


def test_load_rejects_foreign_npz(tmp_path):
    path = tmp_path / "foreign.npz"
    np.savez(path, a=np.ones(2))
    with pytest.raises(ValueError, match="not written by"):
        load(path)
