"""Write a `Network` as a real `.tflite` flatbuffer, without TensorFlow.

The graph: input [1, n] float32 → SUB mean → MUL 1/scale (the standardisation) →
FULLY_CONNECTED (+ fused ReLU) per hidden layer →
FULLY_CONNECTED → LOGISTIC → output [1, 1], P(win). The batch dimension may be resized.
A JSON metadata entry named `novapulse` carries the model card (version, trained_at,
samples, validation score, mode, feature names) inside the same file, so swapping the file
swaps weights and card together, atomically."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import flatbuffers
import numpy as np
import tflite as fb

from novapulse.ml.model import Layer, Network

SCHEMA_VERSION = 3
METADATA_NAME = "novapulse"
_ALIGN = 16
# Operator codes in the order of the model's operator_codes table.
_OPCODES = (fb.BuiltinOperator.FULLY_CONNECTED, fb.BuiltinOperator.LOGISTIC,
            fb.BuiltinOperator.SUB, fb.BuiltinOperator.MUL)
_FC, _LOGISTIC, _SUB, _MUL = range(4)


class ModelFileError(Exception):
    """A file that is not a model this bot wrote (corrupt, truncated, or foreign)."""


def _int_vector(builder: flatbuffers.Builder, values: list[int]) -> int:
    vector: int = builder.CreateNumpyVector(np.asarray(values, dtype=np.int32))
    return vector


def _buffer(builder: flatbuffers.Builder, data: bytes) -> int:
    data_offset = None
    if data:
        builder.StartVector(1, len(data), _ALIGN)
        builder.head = builder.head - len(data)
        builder.Bytes[builder.head:builder.head + len(data)] = data
        data_offset = builder.EndVector()
    fb.BufferStart(builder)
    if data_offset is not None:
        fb.BufferAddData(builder, data_offset)
    end: int = fb.BufferEnd(builder)
    return end


def network_to_tflite(network: Network, card: Mapping[str, Any]) -> bytes:
    """The flatbuffer bytes of `network`, with `card` as its JSON metadata."""
    b = flatbuffers.Builder(4096)
    buffers: list[bytes] = [b""]  # buffer 0: the empty sentinel every tensor without data uses
    tensors: list[tuple[str, list[int], int]] = []  # name, shape, buffer index

    def tensor(name: str, shape: list[int], data: np.ndarray | None = None) -> int:
        index = 0
        if data is not None:
            buffers.append(np.ascontiguousarray(data, dtype="<f4").tobytes())
            index = len(buffers) - 1
        tensors.append((name, shape, index))
        return len(tensors) - 1

    n_in = network.n_inputs
    x = tensor("features", [1, n_in])
    ops: list[tuple[int, list[int], list[int], bool, bool]] = []  # code, in, out, fc, relu
    mean = tensor("standardise/mean", [n_in], network.mean)
    inv_scale = tensor("standardise/inv_scale", [n_in], network.inv_scale)
    centred = tensor("standardise/centred", [1, n_in])
    h = tensor("standardise/z", [1, n_in])
    ops.append((_SUB, [x, mean], [centred], False, False))
    ops.append((_MUL, [centred, inv_scale], [h], False, False))
    for i, layer in enumerate(network.layers):
        out_dim = int(layer.weights.shape[0])
        w = tensor(f"dense{i}/weights", [out_dim, int(layer.weights.shape[1])], layer.weights)
        bias = tensor(f"dense{i}/bias", [out_dim], layer.bias)
        last = i == len(network.layers) - 1
        y = tensor("logit" if last else f"dense{i}/relu", [1, out_dim])
        ops.append((_FC, [h, w, bias], [y], True, not last))
        h = y
    p = tensor("p_win", [1, 1])
    ops.append((_LOGISTIC, [h], [p], False, False))

    # Everything a table points at is built before the table itself.
    buffer_offsets = [_buffer(b, data) for data in buffers]
    card_bytes = json.dumps(dict(card), sort_keys=True).encode()
    buffer_offsets.append(_buffer(b, card_bytes))
    card_buffer = len(buffer_offsets) - 1

    tensor_offsets = []
    for name, shape, index in tensors:
        name_off = b.CreateString(name)
        shape_off = _int_vector(b, shape)
        # Activations may take a batch; constants keep their shape.
        signature_off = (_int_vector(b, [-1, *shape[1:]]) if len(shape) == 2 and index == 0
                         else None)
        fb.TensorStart(b)
        fb.TensorAddShape(b, shape_off)
        if signature_off is not None:
            fb.TensorAddShapeSignature(b, signature_off)
        fb.TensorAddType(b, fb.TensorType.FLOAT32)
        fb.TensorAddBuffer(b, index)
        fb.TensorAddName(b, name_off)
        tensor_offsets.append(fb.TensorEnd(b))

    op_offsets = []
    for code, inputs, outputs, fc, relu in ops:
        in_off = _int_vector(b, inputs)
        out_off = _int_vector(b, outputs)
        options = None
        if fc:
            fb.FullyConnectedOptionsStart(b)
            fb.FullyConnectedOptionsAddFusedActivationFunction(
                b, fb.ActivationFunctionType.RELU if relu
                else fb.ActivationFunctionType.NONE)
            options = fb.FullyConnectedOptionsEnd(b)
        fb.OperatorStart(b)
        fb.OperatorAddOpcodeIndex(b, code)
        fb.OperatorAddInputs(b, in_off)
        fb.OperatorAddOutputs(b, out_off)
        if options is not None:
            fb.OperatorAddBuiltinOptionsType(
                b, fb.BuiltinOptions.FullyConnectedOptions)
            fb.OperatorAddBuiltinOptions(b, options)
        op_offsets.append(fb.OperatorEnd(b))

    def vector_of(offsets: list[int]) -> int:
        b.StartVector(4, len(offsets), 4)
        for off in reversed(offsets):
            b.PrependUOffsetTRelative(off)
        end: int = b.EndVector()
        return end

    tensors_vec = vector_of(tensor_offsets)
    ops_vec = vector_of(op_offsets)
    sg_in = _int_vector(b, [x])
    sg_out = _int_vector(b, [p])
    sg_name = b.CreateString("main")
    fb.SubGraphStart(b)
    fb.SubGraphAddTensors(b, tensors_vec)
    fb.SubGraphAddInputs(b, sg_in)
    fb.SubGraphAddOutputs(b, sg_out)
    fb.SubGraphAddOperators(b, ops_vec)
    fb.SubGraphAddName(b, sg_name)
    subgraphs_vec = vector_of([fb.SubGraphEnd(b)])

    code_offsets = []
    for builtin in _OPCODES:
        fb.OperatorCodeStart(b)
        fb.OperatorCodeAddDeprecatedBuiltinCode(b, builtin)
        fb.OperatorCodeAddBuiltinCode(b, builtin)
        fb.OperatorCodeAddVersion(b, 1)
        code_offsets.append(fb.OperatorCodeEnd(b))
    codes_vec = vector_of(code_offsets)
    buffers_vec = vector_of(buffer_offsets)

    meta_name = b.CreateString(METADATA_NAME)
    fb.MetadataStart(b)
    fb.MetadataAddName(b, meta_name)
    fb.MetadataAddBuffer(b, card_buffer)
    metadata_vec = vector_of([fb.MetadataEnd(b)])

    description = b.CreateString(f"NovaPulse trade predictor v{card.get('version', '?')}")
    fb.ModelStart(b)
    fb.ModelAddVersion(b, SCHEMA_VERSION)
    fb.ModelAddOperatorCodes(b, codes_vec)
    fb.ModelAddSubgraphs(b, subgraphs_vec)
    fb.ModelAddDescription(b, description)
    fb.ModelAddBuffers(b, buffers_vec)
    fb.ModelAddMetadata(b, metadata_vec)
    b.Finish(fb.ModelEnd(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def read_network(data: bytes) -> Network:
    """The weights of a file this module wrote, back as a `Network` (for the learner)."""
    try:
        model = fb.Model.GetRootAs(data, 0)
        graph = model.Subgraphs(0)
        named: dict[str, np.ndarray] = {}
        for i in range(graph.TensorsLength()):
            t = graph.Tensors(i)
            if t.Buffer() > 0:
                raw = model.Buffers(t.Buffer()).DataAsNumpy()
                named[t.Name().decode()] = np.frombuffer(bytes(raw), dtype="<f4").reshape(
                    t.ShapeAsNumpy()).astype(np.float64)
        layers: list[Layer] = []
        while f"dense{len(layers)}/weights" in named:
            i = len(layers)
            layers.append(Layer(named[f"dense{i}/weights"], named[f"dense{i}/bias"]))
        mean, inv_scale = named["standardise/mean"], named["standardise/inv_scale"]
    except KeyError as exc:
        raise ModelFileError(f"no tensor {exc}: not a model this bot wrote") from None
    except Exception as exc:
        raise ModelFileError(f"unreadable model file: {exc}") from exc
    if not layers:
        raise ModelFileError("no dense layers: not a model this bot wrote")
    return Network(mean, inv_scale, layers)


def read_card(data: bytes) -> dict[str, Any]:
    """The model card stored in a file this module wrote; ModelFileError otherwise."""
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ModelFileError("not a TFLite flatbuffer (no TFL3 identifier)")
    try:
        model = fb.Model.GetRootAs(data, 0)
        for i in range(model.MetadataLength()):
            entry = model.Metadata(i)
            if entry.Name() == METADATA_NAME.encode():
                raw = model.Buffers(entry.Buffer()).DataAsNumpy()
                card = json.loads(bytes(raw).decode())
                if not isinstance(card, dict):
                    raise ModelFileError("model card is not a JSON object")
                return card
    except ModelFileError:
        raise
    except Exception as exc:  # a corrupt flatbuffer fails in many ways
        raise ModelFileError(f"unreadable model file: {exc}") from exc
    raise ModelFileError(f"no '{METADATA_NAME}' model card: not a model this bot wrote")
