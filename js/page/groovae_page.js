// The GrooVAE page: the models listed in models/index.json (written by helpers/web_page.py), run
// on TensorFlow.js by the decode loop below, which steps the same cells as helpers/model.py's
// sampling decoder, so that for a z and a temperature near 0 the page plays what Python plays.
// Grooves are (steps, 27) arrays: hits (9) | velocities (9) | offsets (9), offsets in [-1, 1]
// of half a step, positive early, as helpers/converter.py writes them.
'use strict';

const tf = mm.tf;
const NUM_DRUMS = 9;
const DEPTH = 3 * NUM_DRUMS;
const STEPS_PER_QUARTER = 4;
const DECODED_QPM = 120;  // the converter writes grooves at 120 qpm; the loop rescales to the tempo
const FORGET_BIAS = 1.0;  // Magenta's LSTM cells add 1 to the forget gate
const TAP_CLASS = 3;  // tapify puts the loudest hit of a step on class 3 (helpers/converter.py)
const TAP_PITCH = 42;
const DRUM_NAMES = ['kick', 'snare', 'closed hi-hat', 'open hi-hat', 'low tom', 'mid tom',
                    'high tom', 'crash', 'ride'];

const page = {
  models: {},  // name -> {info, weights} for models that loaded
  groove: null,  // what is shown and looped: {groove: number[][], model, label}
  lastInput: null,  // the last uploaded or tapped groove, as the converter reads it
  decodeMs: [],
  sounds: [],
  output: 'built-in',
  midiAccess: null,
  kernel: 'wasm',  // what runs the network's products: 'wasm' (SIMD, where there is) or 'js'
};
window.groovaePage = page;

function $(id) { return document.getElementById(id); }

function showMessage(text) {
  const box = $('message');
  box.textContent = text;
  box.hidden = !text;
}

// --- random numbers: seeded, so a seed on the page gives the same groove every time -----------

function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6D2B79F5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function standardNormal(random, n) {
  const out = [];
  while (out.length < n) {  // Box-Muller
    const u = 1 - random();
    const v = random();
    const r = Math.sqrt(-2 * Math.log(u));
    out.push(r * Math.cos(2 * Math.PI * v), r * Math.sin(2 * Math.PI * v));
  }
  return out.slice(0, n);
}

// --- the model: weights as magenta-js stores them, cells as Magenta's TF1 graph runs them -------

const BYTES = {float32: 4, int32: 4, float16: 2, uint16: 2, uint8: 1};

function specBytes(spec) {
  const dtype = spec.quantization ? spec.quantization.dtype : spec.dtype;
  return spec.shape.reduce((n, d) => n * d, 1) * BYTES[dtype];
}

async function loadModel(info) {
  const base = `models/${info.folder}`;
  const response = await fetch(`${base}/weights_manifest.json`);
  if (!response.ok) throw new Error(`${base}/weights_manifest.json: HTTP ${response.status}`);
  const manifest = await response.json();
  const weights = {};
  for (const group of manifest) {  // sizes checked first: a damaged folder is named, not loaded
    const shards = await Promise.all(group.paths.map(async (path) => {
      const shard = await fetch(`${base}/${path}`);
      if (!shard.ok) throw new Error(`${base}/${path}: HTTP ${shard.status}`);
      return new Uint8Array(await shard.arrayBuffer());
    }));
    const held = shards.reduce((n, shard) => n + shard.length, 0);
    const need = group.weights.reduce((n, spec) => n + specBytes(spec), 0);
    if (held !== need) {
      throw new Error(`its shards hold ${held} bytes where weights_manifest.json needs ${need}: ` +
                      'the folder is damaged; export it again');
    }
    const data = new Uint8Array(held);
    shards.reduce((at, shard) => { data.set(shard, at); return at + shard.length; }, 0);
    Object.assign(weights, tf.io.decodeWeights(data.buffer, group.weights));
  }
  const need = ['encoder/mu/kernel', 'decoder/z_to_initial_state/kernel',
                'decoder/output_projection/kernel'];
  for (const name of need) {
    if (!weights[name]) throw new Error(`${base}: the weights lack ${name}`);
  }
  const zSize = weights['encoder/mu/kernel'].shape[1];
  if (zSize !== info.z_size) throw new Error(`${base}: z has ${zSize} dims, index.json says ${info.z_size}`);
  return {info, weights};
}

// --- the network: one groove at a time is a chain of small matrix-vector products, where
// TF.js's per-operation cost outweighs the arithmetic (bench/bench_web_page.py). TF.js only reads
// the weights. The products run on one Float32Array heap: by a WebAssembly SIMD kernel where the
// browser has WebAssembly SIMD (Chrome 91, Firefox 89, Safari 16.4 and later), else by the same
// kernel in plain JavaScript (?kernel=js asks for that one).

function leb128(n) {
  const bytes = [];
  do {
    bytes.push((n & 0x7F) | (n > 0x7F ? 0x80 : 0));
    n >>>= 7;
  } while (n);
  return bytes;
}
const wasmSection = (id, bytes) => [id, ...leb128(bytes.length), ...bytes];
const wasmName = (text) => [text.length, ...Array.from(text, (ch) => ch.charCodeAt(0))];

// The WebAssembly module: gemv(x, w, out, rows, cols) adds to out[j] the sum over i of
// x[i] * w[j * rows + i], for j < cols, in float32 on the memory env.heap, four rows at a time.
// x, w and out are byte addresses (multiples of 16), rows is in bytes (a multiple of 16).
// Parameters 0-4, then the locals j (5), i (6), wp (7, w's row j) and sum (8, four lanes).
const GEMV_CODE = [
  0x02, 0x03, 0x7F, 0x01, 0x7B,  // locals: 3 i32, 1 v128
  0x20, 0x01, 0x21, 0x07,  // wp = w
  0x02, 0x40, 0x03, 0x40,  // block, loop (over j)
  0x20, 0x05, 0x20, 0x04, 0x4F, 0x0D, 0x01,  // j >= cols: out of the block
  0xFD, 0x0C, ...new Array(16).fill(0), 0x21, 0x08,  // sum = 0
  0x41, 0x00, 0x21, 0x06,  // i = 0
  0x02, 0x40, 0x03, 0x40,  // block, loop (over i)
  0x20, 0x06, 0x20, 0x03, 0x4F, 0x0D, 0x01,  // i >= rows: out of the inner block
  0x20, 0x08,  // sum +
  0x20, 0x00, 0x20, 0x06, 0x6A, 0xFD, 0x00, 0x04, 0x00,  // v128.load(x + i)
  0x20, 0x07, 0xFD, 0x00, 0x04, 0x00,  // * v128.load(wp)
  0xFD, 0xE6, 0x01, 0xFD, 0xE4, 0x01, 0x21, 0x08,  // f32x4.mul, f32x4.add -> sum
  0x20, 0x06, 0x41, 0x10, 0x6A, 0x21, 0x06,  // i += 16
  0x20, 0x07, 0x41, 0x10, 0x6A, 0x21, 0x07,  // wp += 16
  0x0C, 0x00, 0x0B, 0x0B,  // again; end loop, block
  0x20, 0x02, 0x20, 0x05, 0x41, 0x02, 0x74, 0x6A, 0x21, 0x06,  // i = out + 4 j
  0x20, 0x06, 0x20, 0x06, 0x2A, 0x02, 0x00,  // address, f32.load(address)
  0x20, 0x08, 0xFD, 0x1F, 0x00, 0x92,  // + lane 0
  0x20, 0x08, 0xFD, 0x1F, 0x01, 0x92,  // + lane 1
  0x20, 0x08, 0xFD, 0x1F, 0x02, 0x92,  // + lane 2
  0x20, 0x08, 0xFD, 0x1F, 0x03, 0x92,  // + lane 3
  0x38, 0x02, 0x00,  // f32.store
  0x20, 0x05, 0x41, 0x01, 0x6A, 0x21, 0x05,  // j += 1
  0x0C, 0x00, 0x0B, 0x0B,  // again; end loop, block
  0x0B,  // end
];
const GEMV_WASM = new Uint8Array([
  0x00, 0x61, 0x73, 0x6D, 0x01, 0x00, 0x00, 0x00,  // "\0asm", version 1
  ...wasmSection(1, [1, 0x60, 5, 0x7F, 0x7F, 0x7F, 0x7F, 0x7F, 0]),  // type 0: (5 i32) -> ()
  ...wasmSection(2, [1, ...wasmName('env'), ...wasmName('heap'), 0x02, 0x00, 0x01]),  // memory
  ...wasmSection(3, [1, 0]),  // function 0 has type 0
  ...wasmSection(7, [1, ...wasmName('gemv'), 0x00, 0x00]),  // exported as gemv
  ...wasmSection(10, [1, ...leb128(GEMV_CODE.length), ...GEMV_CODE]),
]);
const WASM_PAGE_BYTES = 65536;

// The same kernel in plain JavaScript, addresses and rows counted in floats.
function gemvJs(heap) {
  return (x, w, out, rows, cols) => {
    for (let j = 0; j < cols; j++) {
      const row = w + j * rows;
      let s0 = 0;
      let s1 = 0;
      let s2 = 0;
      let s3 = 0;
      for (let i = 0; i < rows; i += 4) {
        s0 += heap[x + i] * heap[row + i];
        s1 += heap[x + i + 1] * heap[row + i + 1];
        s2 += heap[x + i + 2] * heap[row + i + 2];
        s3 += heap[x + i + 3] * heap[row + i + 3];
      }
      heap[out + j] += s0 + s1 + s2 + s3;
    }
  };
}

// Which kernel runs the products when `kernel` ('wasm' or 'js') is asked for.
function kernelName(kernel) {
  return kernel !== 'js' && WebAssembly.validate(GEMV_WASM) ? 'WebAssembly SIMD' : 'plain JavaScript';
}

// A heap of `floats` and its kernel, gemv(x, w, out, rows, cols) in floats.
function heapAndKernel(floats, kernel) {
  if (kernelName(kernel) === 'WebAssembly SIMD') {
    const memory = new WebAssembly.Memory({initial: Math.ceil(4 * floats / WASM_PAGE_BYTES)});
    const module = new WebAssembly.Module(GEMV_WASM);
    const {gemv} = new WebAssembly.Instance(module, {env: {heap: memory}}).exports;
    return {heap: new Float32Array(memory.buffer), kernel: 'WebAssembly SIMD',
            gemv: (x, w, out, rows, cols) => gemv(4 * x, 4 * w, 4 * out, 4 * rows, cols)};
  }
  const heap = new Float32Array(floats);
  return {heap, kernel: 'plain JavaScript', gemv: gemvJs(heap)};
}

const roundUp4 = (n) => Math.ceil(n / 4) * 4;

// The weights on a heap, once per model (and per kernel): each layer's kernel (rows, cols) as
// the rows a product reads, transposed to (cols, rows rounded up to 4), zeros in the padding.
function network(model, kernel = page.kernel) {
  if (model.network && model.network.asked === kernel) return model.network;
  const w = model.weights;
  const blocks = [];
  let floats = 0;
  let [mostRows, mostCols] = [0, 0];
  const place = (array) => {
    blocks.push([floats, array]);
    floats += roundUp4(array.length);
    return floats - roundUp4(array.length);
  };
  // The rows [start, end) of each range, in order, as a product's matrix.
  const matrix = (name, ranges) => {
    const [, cols] = w[name].shape;
    const values = w[name].dataSync();
    const inputs = ranges.reduce((n, [start, end]) => n + end - start, 0);
    const rows = roundUp4(inputs);
    const transposed = new Float32Array(cols * rows);
    let r = 0;
    for (const [start, end] of ranges) {
      for (let i = start; i < end; i++, r++) {
        for (let j = 0; j < cols; j++) transposed[j * rows + r] = values[i * cols + j];
      }
    }
    [mostRows, mostCols] = [Math.max(mostRows, rows), Math.max(mostCols, cols)];
    return {at: place(transposed), rows, inputs, cols};
  };
  const bias = (scope) => w[`${scope}/bias`].dataSync();
  const layer = (scope) => ({...matrix(`${scope}/kernel`, [[0, w[`${scope}/kernel`].shape[0]]]),
                             bias: bias(scope)});
  // A cell reads [its input parts, h] at each step; `fixed` rows (z's, in the decoder) once.
  const cell = (scope, fixed = null) => {
    const rows = w[`${scope}/kernel`].shape[0];
    const units = w[`${scope}/bias`].shape[0] / 4;
    if (!fixed) return {units, bias: bias(scope), step: matrix(`${scope}/kernel`, [[0, rows]])};
    const [start, end] = fixed;
    return {units, bias: bias(scope), fixed: matrix(`${scope}/kernel`, [fixed]),
            step: matrix(`${scope}/kernel`, [[0, start], [end, rows]])};
  };
  const encoder = 'encoder/cell_0/bidirectional_rnn';
  const zRows = [DEPTH, DEPTH + model.info.z_size];  // the first decoder cell's [output, z, controls]
  const net = {
    asked: kernel,
    forward: cell(`${encoder}/fw/multi_rnn_cell/cell_0/lstm_cell`),
    backward: cell(`${encoder}/bw/multi_rnn_cell/cell_0/lstm_cell`),
    mu: layer('encoder/mu'),
    initial: layer('decoder/z_to_initial_state'),
    decoder: model.info.dec_rnn_size.map((_, i) => cell(`decoder/multi_rnn_cell/cell_${i}/lstm_cell`,
                                                         i === 0 ? zRows : null)),
    output: layer('decoder/output_projection'),
  };
  net.x = place(new Float32Array(mostRows));  // scratch: the longest x, the longest out
  net.out = place(new Float32Array(mostCols));
  Object.assign(net, heapAndKernel(floats, kernel));
  for (const [at, array] of blocks) net.heap.set(array, at);
  model.network = net;
  return net;
}

// `base` (cols) + the matrix times x, x given in parts that fill its inputs: (cols,) float32.
function product(net, matrix, parts, base) {
  const {heap} = net;
  let at = net.x;
  for (const part of parts) {
    heap.set(part, at);
    at += part.length;
  }
  heap.fill(0, at, net.x + matrix.rows);
  heap.set(base, net.out);
  net.gemv(net.x, matrix.at, net.out, matrix.rows, matrix.cols);
  return heap.slice(net.out, net.out + matrix.cols);
}

function sigmoid(v) { return 1 / (1 + Math.exp(-v)); }

// A Magenta LSTM cell (TF1 layout): gates = [x, h] kernel + bias, split i, j, f, o; the forget
// gate gets FORGET_BIAS. x comes in parts; `base` is the bias, with the product of the fixed
// rows where the cell has them.
function lstmStep(net, cell, parts, state, base = cell.bias) {
  const {units} = cell;
  const gates = product(net, cell.step, [...parts, state.h], base);
  const c = new Float64Array(units);
  const h = new Float64Array(units);
  for (let k = 0; k < units; k++) {
    const i = sigmoid(gates[k]);
    const j = Math.tanh(gates[units + k]);
    const f = sigmoid(gates[2 * units + k] + FORGET_BIAS);
    const o = sigmoid(gates[3 * units + k]);
    c[k] = state.c[k] * f + i * j;
    h[k] = Math.tanh(c[k]) * o;
  }
  return {c, h};
}

function denseLayer(net, layer, parts) { return product(net, layer, parts, layer.bias); }

// Encoder inputs of converter outputs, as helpers/converter.py's encoder_inputs derives them at
// inference (no note dropout): tapify -> humanize -> fixed_velocities -> add_instruments.
function encoderInputs(groove, converter) {
  return groove.map((row) => {
    let hits = row.slice(0, NUM_DRUMS);
    let velocities = row.slice(NUM_DRUMS, 2 * NUM_DRUMS);
    let offsets = row.slice(2 * NUM_DRUMS);
    if (converter.tapify) {
      let loudest = 0;  // the first of the loudest, as numpy's argmax
      velocities.forEach((v, i) => { if (v > velocities[loudest]) loudest = i; });
      const tapped = [hits[loudest], velocities[loudest], offsets[loudest]];
      [hits, velocities, offsets] = [0, 1, 2].map((part) => {
        const out = new Array(NUM_DRUMS).fill(0);
        out[TAP_CLASS] = tapped[part];
        return out;
      });
    }
    if (converter.humanize || converter.fixed_velocities) velocities = velocities.map(() => 0);
    if (converter.humanize) offsets = offsets.map(() => 0);
    for (const drum of converter.add_instruments) {
      hits[drum] = 0;
      velocities[drum] = 0;
      offsets[drum] = 0;
    }
    return [...hits, ...velocities, ...offsets];
  });
}

function controlsOf(model, groove) {
  if (!model.info.converter.hits_as_controls) return null;
  return groove.map((row) => row.slice(0, NUM_DRUMS).map((h) => (h > 0.5 ? 1 : 0)));
}

function zeroState(units) { return {c: new Float64Array(units), h: new Float64Array(units)}; }

// The posterior mean of one groove: a bidirectional LSTM's last states through encoder/mu.
function encode(model, groove) {
  const net = network(model);
  const inputs = encoderInputs(groove, model.info.converter);
  const controls = controlsOf(model, groove);
  const rows = inputs.map((row, t) => (controls ? [row, controls[t]] : [row]));
  let forward = zeroState(net.forward.units);
  for (const row of rows) forward = lstmStep(net, net.forward, row, forward);
  let backward = zeroState(net.backward.units);
  for (const row of rows.slice().reverse()) backward = lstmStep(net, net.backward, row, backward);
  return Array.from(denseLayer(net, net.mu, [forward.h, backward.h]));
}

// How a drawn hit's velocity and offset come out of the decoder's logits. "magenta" is Magenta's
// decoding (sigmoid and tanh of the logits, whatever the hit): the one TrainedModel(...,
// decoding="magenta") plays. A new default decoding in helpers/model.py gets its entry here, and
// index.json's "decoding" picks it per model.
// Velocities and offsets of one step, as helpers/model.py's decodings: Magenta's plays the raw
// outputs in every cell; per-hit plays each drawn hit at its value given the hit (Magenta's
// objective's outputs divided by p(hit), floored) plus a residual drawn from the model's
// quantiles times sqrt(temperature), and zeros where no hit is drawn.
const MIN_HIT_PROBABILITY = 0.05;
const clip = (v, low, high) => Math.min(high, Math.max(low, v));

function drawQuantile(quantiles, u) {
  const position = u * (quantiles.length - 1);
  const below = Math.floor(position);
  const above = Math.min(below + 1, quantiles.length - 1);
  return quantiles[below] + (position - below) * (quantiles[above] - quantiles[below]);
}

const DECODINGS = {
  magenta: (logits) => [
    Array.from(logits.slice(NUM_DRUMS, 2 * NUM_DRUMS), sigmoid),
    Array.from(logits.slice(2 * NUM_DRUMS), Math.tanh),
  ],
  per_hit: (logits, played, temperature, random, info) => {
    const scale = Math.sqrt(Math.max(temperature, 0));
    const velocities = [];
    const offsets = [];
    for (let d = 0; d < NUM_DRUMS; d++) {
      let velocity = sigmoid(logits[NUM_DRUMS + d]);
      let offset = Math.tanh(logits[2 * NUM_DRUMS + d]);
      if (info.velocity_offset_loss === 'all_cells') {
        const p = Math.max(sigmoid(logits[d]), MIN_HIT_PROBABILITY);
        velocity = Math.min(velocity / p, 1);
        offset = clip(offset / p, -1, 1);
      }
      velocity = clip(velocity + scale * drawQuantile(info.residuals[0][d], random()), 0, 1);
      offset = clip(offset + scale * drawQuantile(info.residuals[1][d], random()), -1, 1);
      velocities.push(velocity * played[d]);
      offsets.push(offset * played[d]);
    }
    return [velocities, offsets];
  },
};

// The sampling decoder, step by step as helpers/model.py's _decode_steps: step t sees the
// previous output, z and (for a hits-conditioned model) controls[t]; hits are drawn as
// u < sigmoid(logit / temperature) (temperature 0: logit > 0), or taken from `hits` when given.
function decode(model, z, {temperature = 0.5, seed = 0, controls = null, hits = null} = {}) {
  const net = network(model);
  const {steps} = model.info;
  const decoding = DECODINGS[model.info.decoding];
  if (!decoding) throw new Error(`${model.info.name}: no decoding ${model.info.decoding} on this page`);
  const random = mulberry32(seed);
  const started = performance.now();
  const flat = Float64Array.from(denseLayer(net, net.initial, [z]), Math.tanh);
  let at = 0;
  let states = net.decoder.map((cell) => {  // Magenta's order: c1, h1, c2, h2, ...
    const state = {c: flat.slice(at, at + cell.units), h: flat.slice(at + cell.units, at + 2 * cell.units)};
    at += 2 * cell.units;
    return state;
  });
  // z is the same at every step: its share of the first cell's gates is computed once. The
  // first cell's input is [previous output, z, controls].
  const first = net.decoder[0];
  const zGates = product(net, first.fixed, [z], first.bias);
  let previous = new Array(DEPTH).fill(0);
  const groove = [];
  for (let t = 0; t < steps; t++) {
    states[0] = lstmStep(net, first, controls ? [previous, controls[t]] : [previous], states[0], zGates);
    for (let i = 1; i < states.length; i++) {
      states[i] = lstmStep(net, net.decoder[i], [states[i - 1].h], states[i]);
    }
    const logits = denseLayer(net, net.output, [states[states.length - 1].h]);
    const played = hits ? hits[t].slice() : Array.from(logits.slice(0, NUM_DRUMS), (logit) => {
      if (temperature <= 0) return logit > 0 ? 1 : 0;
      return random() < sigmoid(logit / temperature) ? 1 : 0;
    });
    const [velocities, offsets] = decoding(logits, played, temperature, random, model.info);
    previous = [...played, ...velocities, ...offsets];
    groove.push(previous);
  }
  page.decodeMs.push(performance.now() - started);
  return groove;
}

function slerp(a, b, t) {
  const norm = (v) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));
  const cos = a.reduce((s, x, i) => s + x * b[i], 0) / (norm(a) * norm(b));
  const omega = Math.acos(Math.min(1, Math.max(-1, cos)));
  if (Math.abs(Math.sin(omega)) < 1e-8) return a.map((x, i) => (1 - t) * x + t * b[i]);
  const [sa, sb] = [Math.sin((1 - t) * omega), Math.sin(t * omega)];
  return a.map((x, i) => (sa * x + sb * b[i]) / Math.sin(omega));
}

// --- grooves <-> notes, as helpers/converter.py (from_tensors, and reading in 'infer' mode) -----

function stepSeconds(qpm) { return 60 / qpm / STEPS_PER_QUARTER; }

// Notes of a decoded groove at `qpm` (seconds), as from_tensors writes them at 120 and set_tempo
// scales them.
function grooveNotes(groove, pitchClasses, qpm) {
  const step = stepSeconds(qpm);
  const notes = [];
  groove.forEach((row, t) => {
    for (let drum = 0; drum < NUM_DRUMS; drum++) {
      if (row[drum] <= 0.5) continue;
      const offset = Math.min(0.5, Math.max(-0.5, row[2 * NUM_DRUMS + drum] / 2));
      const velocity = Math.min(127, Math.max(0, Math.round(row[NUM_DRUMS + drum] * 127)));
      const start = (t - offset) * step;
      notes.push({pitch: pitchClasses[drum][0], velocity, drum, startTime: start,
                  endTime: start + step});
    }
  });
  return notes;
}

class GrooveInputError extends Error {}

// The groove of a drum NoteSequence in the model's window: 4/4 at one tempo, each note on its
// nearest step with the loudest per step and drum kept, offsets as the converter measures them;
// a part shorter than the window is looped to fill it (as helpers/windowing.py does).
function sequenceGroove(ns, info, filename) {
  const signatures = ns.timeSignatures || [];
  const odd = signatures.find((s) => s.numerator !== 4 || s.denominator !== 4);
  if (odd) {
    throw new GrooveInputError(`${filename} is in ${odd.numerator}/${odd.denominator}; ` +
                               'the models play 4/4: give a groove in 4/4');
  }
  const tempos = new Set((ns.tempos || []).map((t) => Math.round(t.qpm * 1000)));
  if (tempos.size > 1) {
    throw new GrooveInputError(`${filename} changes tempo; give a groove at a single tempo`);
  }
  const qpm = ns.tempos && ns.tempos.length ? ns.tempos[0].qpm : 120;
  const drumOf = {};
  info.pitch_classes.forEach((pitches, drum) => pitches.forEach((p) => { drumOf[p] = drum; }));
  const notes = ns.notes.filter((n) => drumOf[n.pitch] !== undefined);
  if (!notes.length) {
    throw new GrooveInputError(`${filename} has no drum notes (General MIDI drum pitches)`);
  }
  const step = stepSeconds(qpm);
  const steps = info.steps;
  const barSteps = 4 * STEPS_PER_QUARTER;
  const grid = Array.from({length: steps}, () => new Array(DEPTH).fill(0));
  let lastStep = 0;
  for (const note of notes) {
    const t = Math.round(note.startTime / step);
    if (t >= steps) continue;  // the first window only
    lastStep = Math.max(lastStep, t);
    const drum = drumOf[note.pitch];
    const velocity = (note.velocity || 0) / 127;
    if (grid[t][drum] && grid[t][NUM_DRUMS + drum] >= velocity) continue;
    grid[t][drum] = 1;
    grid[t][NUM_DRUMS + drum] = velocity;
    grid[t][2 * NUM_DRUMS + drum] = 2 * (t * step - note.startTime) / step;
  }
  const endStep = Math.max(Math.round((ns.totalTime || 0) / step), lastStep + 1);
  const length = Math.min(steps, Math.ceil(endStep / barSteps) * barSteps);
  for (let t = length; t < steps; t++) grid[t] = grid[t % length].slice();
  return {groove: grid, qpm};
}

function readMidi(bytes, filename) {
  try {
    return mm.midiToSequenceProto(bytes);
  } catch (err) {
    throw new GrooveInputError(`${filename} is not a MIDI file (${err.message || err})`);
  }
}

// A standard MIDI file (format 0, 480 ticks a quarter) of drum notes at `qpm`, on channel 10.
// A hit drawn at velocity 0 is silent and a note-on of velocity 0 is a note-off in MIDI, so it is
// left out; a note before the downbeat starts on it; a note ends where the next of its pitch
// starts, so that no note-off cuts a later note short.
const TICKS_PER_QUARTER = 480;

function midiFile(notes, qpm) {
  const ticks = (seconds) => Math.round(Math.max(0, seconds) * qpm / 60 * TICKS_PER_QUARTER);
  const heard = notes.filter((n) => n.velocity > 0).sort((a, b) => a.startTime - b.startTime);
  const events = [];  // [tick, order (offs first), bytes]
  heard.forEach((note, i) => {
    const next = heard.slice(i + 1).find((n) => n.pitch === note.pitch);
    const start = ticks(note.startTime);
    const end = Math.max(start + 1, Math.min(ticks(note.endTime), next ? ticks(next.startTime) : Infinity));
    events.push([start, 1, [0x99, note.pitch, note.velocity]], [end, 0, [0x89, note.pitch, 0]]);
  });
  events.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const perQuarter = Math.round(60e6 / qpm);
  const track = [0, 0xFF, 0x51, 3, perQuarter >> 16, (perQuarter >> 8) & 255, perQuarter & 255,
                 0, 0xFF, 0x58, 4, 4, 2, 24, 8];
  let now = 0;
  for (const [tick, , bytes] of events) {
    track.push(...variableLength(tick - now), ...bytes);
    now = tick;
  }
  track.push(0, 0xFF, 0x2F, 0);
  const length = [24, 16, 8, 0].map((shift) => (track.length >> shift) & 255);
  const header = [0x4D, 0x54, 0x68, 0x64, 0, 0, 0, 6, 0, 0, 0, 1,
                  TICKS_PER_QUARTER >> 8, TICKS_PER_QUARTER & 255];
  return new Uint8Array([...header, 0x4D, 0x54, 0x72, 0x6B, ...length, ...track]);
}

function variableLength(value) {
  const bytes = [value & 0x7F];
  for (let rest = value >> 7; rest > 0; rest >>= 7) bytes.unshift((rest & 0x7F) | 0x80);
  return bytes;
}

// --- sound: the kit's samples through Web Audio, or notes to a Web MIDI port -----------------

let audioContext = null;

async function loadSounds(context) {
  const list = await (await fetch('sounds/index.json')).json();
  return Promise.all(list.map(async (file) => {
    const data = await (await fetch(`sounds/${file}`)).arrayBuffer();
    return context.decodeAudioData(data);
  }));
}

function schedule(context, destination, notes, when) {
  for (const note of notes) {
    const source = context.createBufferSource();
    source.buffer = page.sounds[note.drum];
    const gain = context.createGain();
    gain.gain.value = note.velocity / 127;
    source.connect(gain).connect(destination);
    source.start(when + Math.max(0, note.startTime));
  }
}

// One pass of `groove` rendered offline after `lead` seconds of silence: (samples,) at
// `sampleRate`, with the notes (times from the pass's start), for checks and benches.
async function renderOffline(groove, qpm, sampleRate = 22050, lead = 0.25) {
  const info = page.groove ? page.groove.model.info : Object.values(page.models)[0].info;
  const notes = grooveNotes(groove, info.pitch_classes, qpm);
  const seconds = lead + groove.length * stepSeconds(qpm) + 1;
  const context = new OfflineAudioContext(1, Math.ceil(seconds * sampleRate), sampleRate);
  schedule(context, context.destination, notes, lead);
  const buffer = await context.startRendering();
  return {samples: Array.from(buffer.getChannelData(0)), notes, sampleRate, lead};
}
page.renderOffline = renderOffline;

const loop = {timer: null, next: 0, started: null};

function tempo() { return Math.min(240, Math.max(40, Number($('tempo').value) || 120)); }

function loopSeconds() { return page.groove.groove.length * stepSeconds(tempo()); }

function playLoop() {
  stopLoop();
  if (!page.groove) return;
  const context = ensureAudio();
  loop.next = context.currentTime + 0.05;
  loop.started = performance.now();
  const tick = () => {  // schedule each pass a little ahead of time
    while (loop.next < context.currentTime + 0.2) {
      const notes = grooveNotes(page.groove.groove, page.groove.model.info.pitch_classes, tempo());
      if (page.output === 'built-in') {
        schedule(context, context.destination, notes, loop.next);
      } else {
        sendMidi(notes, loop.next - context.currentTime);
      }
      loop.next += loopSeconds();
    }
  };
  tick();
  loop.timer = setInterval(tick, 50);
}

function stopLoop() {
  if (loop.timer) clearInterval(loop.timer);
  loop.timer = null;
}

function ensureAudio() {
  if (!audioContext) audioContext = new AudioContext();
  if (audioContext.state === 'suspended') audioContext.resume();
  return audioContext;
}

function sendMidi(notes, delaySeconds) {
  const port = page.midiAccess && page.midiAccess.outputs.get(page.output);
  if (!port) return;
  const now = performance.now() + 1000 * delaySeconds;
  for (const note of notes) {
    const on = now + 1000 * Math.max(0, note.startTime);
    port.send([0x99, note.pitch, Math.max(1, note.velocity)], on);  // channel 10: drums
    port.send([0x89, note.pitch, 0], on + 1000 * (note.endTime - note.startTime));
  }
}

async function connectMidi() {
  if (!navigator.requestMIDIAccess) {
    $('midi-status').textContent = 'This browser offers no Web MIDI; the built-in kit plays.';
    return;
  }
  try {
    page.midiAccess = await navigator.requestMIDIAccess();
  } catch (err) {
    $('midi-status').textContent = `Web MIDI refused (${err.name || err}); the built-in kit plays.`;
    return;
  }
  const select = $('output');
  for (const option of [...select.options].slice(1)) option.remove();
  for (const port of page.midiAccess.outputs.values()) {
    select.add(new Option(`MIDI: ${port.name}`, port.id));
  }
  $('midi-status').textContent = `${page.midiAccess.outputs.size} MIDI output port(s)`;
}

// --- what is shown: the pianoroll, shaded by velocity ---------------------------------------

const ROLL_LABELS = 100;  // pixels left of the grid for the drums' names

function drawRoll(groove) {
  const canvas = $('roll');
  const g = canvas.getContext('2d');
  g.fillStyle = '#fff';
  g.fillRect(0, 0, canvas.width, canvas.height);
  const cellW = (canvas.width - ROLL_LABELS) / groove.length;
  const cellH = canvas.height / NUM_DRUMS;
  const x = (step) => ROLL_LABELS + step * cellW;
  g.fillStyle = '#555';
  g.font = '12px sans-serif';
  g.textBaseline = 'middle';
  DRUM_NAMES.forEach((name, drum) => g.fillText(name, 4, (NUM_DRUMS - 0.5 - drum) * cellH));
  for (let t = 0; t <= groove.length; t += STEPS_PER_QUARTER) {
    g.strokeStyle = t % 16 === 0 ? '#bbb' : '#eee';
    g.beginPath();
    g.moveTo(x(t), 0);
    g.lineTo(x(t), canvas.height);
    g.stroke();
  }
  groove.forEach((row, t) => {
    for (let drum = 0; drum < NUM_DRUMS; drum++) {
      if (row[drum] <= 0.5) continue;
      const velocity = Math.min(1, Math.max(0, row[NUM_DRUMS + drum]));
      const offset = Math.min(0.5, Math.max(-0.5, row[2 * NUM_DRUMS + drum] / 2));
      g.fillStyle = `rgba(20, 60, 160, ${0.15 + 0.85 * velocity})`;
      g.fillRect(x(t - offset), (NUM_DRUMS - 1 - drum) * cellH + 1, cellW * 0.9, cellH - 2);
    }
  });
}

function show(groove, model, label) {
  page.groove = {groove, model, label};
  drawRoll(groove);
  const hits = groove.reduce((n, row) => n + row.slice(0, NUM_DRUMS).filter((h) => h > 0.5).length, 0);
  $('groove-info').textContent = `${label}: ${hits} hits, ${groove.length / 16} bars (${model.info.name})`;
  $('play').disabled = false;
  $('download').disabled = false;
}

function downloadMidi() {
  const {groove, model} = page.groove;
  const notes = grooveNotes(groove, model.info.pitch_classes, tempo());
  const bytes = midiFile(notes, tempo());
  const link = document.createElement('a');
  link.href = URL.createObjectURL(new Blob([bytes], {type: 'audio/midi'}));
  link.download = 'groovae.mid';
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
}

// --- the panels ----------------------------------------------------------------------------

function modelFor(panel) {
  const name = $(`${panel}-model`).value;
  const model = page.models[name];
  if (!model) throw new GrooveInputError(`no model for ${panel} loaded (see the list above)`);
  return model;
}

function generate(zA, zB = null) {
  const model = modelFor('generate');
  const temperature = Number($('temperature').value);
  const seed = Number($('seed').value) || 0;
  const mix = Number($('mix').value);
  const z = zB ? slerp(zA, zB, mix) : zA;
  const label = zB ? `seed ${seed} to ${seed + 1} at ${mix}` : `seed ${seed}, temperature ${temperature}`;
  show(decode(model, z, {temperature, seed}), model, label);
}

function priorZ(model, seed) { return standardNormal(mulberry32(seed + 1000003), model.info.z_size); }

// Drumify and humanize: the posterior mean of `input` (a groove the converter read), decoded.
function reencode(panel, input, label) {
  const model = modelFor(panel);
  page.lastInput = input;
  const z = encode(model, input);
  const temperature = Number($('temperature').value);
  const controls = controlsOf(model, input);
  // A hits-conditioned model plays exactly the score's hits (helpers/verbs.py play_hits).
  const options = {temperature, seed: Number($('seed').value) || 0, controls, hits: controls};
  show(decode(model, z, options), model, label);
  playLoop();
}

async function readUpload(input, panel) {
  const file = input.files[0];
  if (!file) return;
  try {
    const model = modelFor(panel);
    const ns = readMidi(new Uint8Array(await file.arrayBuffer()), file.name);
    const {groove, qpm} = sequenceGroove(ns, model.info, file.name);
    if (panel === 'drumify') {
      for (const row of groove) {  // every note is a tap, as helpers/verbs.py drumify has it
        const loudest = Math.max(...row.slice(NUM_DRUMS, 2 * NUM_DRUMS));
        const any = row.slice(0, NUM_DRUMS).some((h) => h > 0.5);
        const drum = model.info.pitch_classes.findIndex((p) => p.includes(TAP_PITCH));
        const offset = row.slice(2 * NUM_DRUMS)[row.slice(NUM_DRUMS, 2 * NUM_DRUMS).indexOf(loudest)];
        row.fill(0);
        if (any) [row[drum], row[NUM_DRUMS + drum], row[2 * NUM_DRUMS + drum]] = [1, loudest, offset];
      }
    }
    $('tempo').value = Math.round(qpm);
    showMessage('');
    reencode(panel, groove, `${panel} of ${file.name}`);
  } catch (err) {
    showMessage(`${file.name}: ${err.message}`);
  } finally {
    input.value = '';
  }
}

// Tapping: one bar of clicks, then two bars of taps; each tap's time against the clicks' grid.
const taps = {start: null, times: [], velocities: [], timer: null};
page.taps = taps;

function startTaps() {
  stopLoop();
  $('tap-start').blur();  // a space or Enter tapped on the focused button would start again
  const context = ensureAudio();
  const beat = 60 / tempo();
  const begin = context.currentTime + 0.1;
  for (let i = 0; i < 12; i++) {  // a bar of count-in, then clicks under the two bars
    const click = context.createOscillator();
    const gain = context.createGain();
    click.frequency.value = i % 4 === 0 ? 1500 : 1000;
    gain.gain.setValueAtTime(0.3, begin + i * beat);
    gain.gain.exponentialRampToValueAtTime(0.001, begin + i * beat + 0.05);
    click.connect(gain).connect(context.destination);
    click.start(begin + i * beat);
    click.stop(begin + i * beat + 0.06);
  }
  taps.start = performance.now() + 1000 * (0.1 + 4 * beat);  // the first tapped downbeat
  taps.times = [];
  taps.velocities = [];
  $('tap-count').textContent = 'count-in...';
  clearTimeout(taps.timer);
  taps.timer = setTimeout(finishTaps, 1000 * (0.1 + 12 * beat));
}

function tap(velocity) {
  if (taps.start === null) return;
  const at = performance.now() - taps.start;
  if (at < -1000 * stepSeconds(tempo()) / 2) return;  // still counting in
  taps.times.push(Math.max(0, at) / 1000);
  taps.velocities.push(velocity);
  $('tap-count').textContent = `${taps.times.length} taps`;
}

function finishTaps() {
  const qpm = tempo();
  taps.start = null;
  try {
    const model = modelFor('drumify');
    const notes = taps.times.map((time, i) => ({pitch: TAP_PITCH, velocity: taps.velocities[i],
                                                startTime: time, endTime: time + 0.05}));
    if (!notes.length) throw new GrooveInputError('no taps heard: press any key in time with the clicks');
    const ns = {notes, tempos: [{time: 0, qpm}], timeSignatures: [],
                totalTime: 8 * 60 / qpm};
    const {groove} = sequenceGroove(ns, model.info, 'your taps');
    showMessage('');
    page.tapsToLoopMs = null;
    const ended = performance.now();
    reencode('drumify', groove, `drumify of ${notes.length} taps`);
    page.tapsToLoopMs = performance.now() - ended;
    $('tap-count').textContent = `${notes.length} taps`;
  } catch (err) {
    showMessage(err.message);
  }
}

function selectPanel(name) {
  for (const tab of document.querySelectorAll('.tab')) {
    tab.setAttribute('aria-selected', String(tab.dataset.panel === name));
  }
  for (const panel of document.querySelectorAll('.panel')) panel.hidden = panel.id !== `panel-${name}`;
}

function wire() {
  for (const tab of document.querySelectorAll('.tab')) {
    tab.addEventListener('click', () => selectPanel(tab.dataset.panel));
  }
  const guarded = (action) => () => {
    try {
      showMessage('');
      action();
    } catch (err) {
      showMessage(err.message);
    }
  };
  $('generate').addEventListener('click', guarded(() => {
    $('mix').value = 0;
    $('mix-value').textContent = '0';
    page.zPair = null;
    generate(priorZ(modelFor('generate'), Number($('seed').value) || 0));
    playLoop();
  }));
  $('interpolate').addEventListener('click', guarded(() => {
    const seed = Number($('seed').value) || 0;
    const model = modelFor('generate');
    page.zPair = [priorZ(model, seed), priorZ(model, seed + 1)];
    $('mix').value = 0.5;
    $('mix-value').textContent = '0.5';
    generate(...page.zPair);
    playLoop();
  }));
  $('mix').addEventListener('input', guarded(() => {
    $('mix-value').textContent = $('mix').value;
    if (page.zPair) generate(...page.zPair);
  }));
  $('play').addEventListener('click', playLoop);
  $('stop').addEventListener('click', stopLoop);
  $('download').addEventListener('click', guarded(downloadMidi));
  $('midi-connect').addEventListener('click', connectMidi);
  $('output').addEventListener('change', () => { page.output = $('output').value; });
  $('tap-start').addEventListener('click', startTaps);
  $('tap-file').addEventListener('change', () => readUpload($('tap-file'), 'drumify'));
  $('humanize-file').addEventListener('change', () => readUpload($('humanize-file'), 'humanize'));
  for (const pad of document.querySelectorAll('.pad')) {
    pad.addEventListener('pointerdown', () => tap(Number(pad.dataset.velocity)));
  }
  document.addEventListener('keydown', (event) => {
    if (event.repeat || taps.start === null || event.target.tagName === 'INPUT') return;
    event.preventDefault();
    tap(100);
  });
}

async function main() {
  wire();
  selectPanel('generate');
  // TF.js's cpu backend reads the weights (?backend=webgl asks for WebGL, which has to hand
  // them back).
  const params = new URLSearchParams(location.search);
  page.kernel = params.get('kernel') || 'wasm';
  const asked = params.get('backend') || 'cpu';
  if (!(await tf.setBackend(asked).catch(() => false))) await tf.setBackend('cpu');
  await tf.ready();
  page.backend = tf.getBackend();
  $('backend').textContent = `The network runs in ${kernelName(page.kernel)}; TensorFlow.js ` +
      `${tf.version.tfjs} reads its weights on the ${page.backend} backend`;
  let index;
  try {
    index = await (await fetch('models/index.json')).json();
  } catch (err) {
    showMessage(`models/index.json could not be read (${err.message}); rebuild the page`);
    return;
  }
  const list = $('models');
  const problems = [];
  const started = performance.now();
  for (const info of index.models) {
    const item = document.createElement('li');
    item.dataset.model = info.name;
    if (info.unavailable) {
      item.className = 'unavailable';
      item.textContent = `${info.name}: not on this page: ${info.unavailable}`;
    } else {
      try {
        page.models[info.name] = await loadModel(info);
        network(page.models[info.name]);  // the weights on the heap now, not at the first press
        item.textContent = `${info.name}: ${info.panels.join(', ')} (${info.source})`;
        for (const panel of info.panels) $(`${panel}-model`).add(new Option(info.name, info.name));
      } catch (err) {
        item.className = 'unavailable';
        item.textContent = `${info.name}: could not be loaded: ${err.message}`;
        problems.push(item.textContent);
      }
    }
    list.append(item);
  }
  page.loadMs = performance.now() - started;
  try {  // decoded offline: an AudioContext may start only after a click
    page.sounds = await loadSounds(new OfflineAudioContext(1, 1, 22050));
  } catch (err) {
    problems.push(`the drum sounds could not be loaded (${err.message})`);
  }
  for (const panel of ['generate', 'drumify', 'humanize']) {
    if (!$(`${panel}-model`).options.length) problems.push(`no model on this page can ${panel}`);
  }
  if (problems.length) showMessage(problems.join('; '));
  $('status').textContent = `${Object.keys(page.models).length} model(s) ready`;
  page.ready = true;
}

page.api = {kernelName, decode, encode, encoderInputs, sequenceGroove, grooveNotes, priorZ, finishTaps};
page.loaded = main().catch((err) => showMessage(`the page failed to start: ${err.message}`));
