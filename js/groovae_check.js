#!/usr/bin/env node
// Proof that a magenta-js GrooVAE checkpoint (written by helpers/magenta_js.py) loads and runs in
// @magenta/music 1.23.1 under Node, with numbers a Python test can compare.
//
//   node js/groovae_check.js --checkpoint http://127.0.0.1:PORT --input in.json --output out.json
//
// in.json (every key optional):
//   tensors:   [n][steps][27]  grooves as hits(9) | velocities(9) | offsets(9), encoded as they are
//   sequences: [n] NoteSequence JSON (camelCase: notes[{pitch, velocity, startTime, endTime}],
//              tempos[{qpm, time}]); run through the checkpoint's GrooveConverter.toTensor first
//   z:         [n][zDims]      latent vectors to decode
// out.json:
//   z, sequence_tensors, sequence_z, decoded, decoded_logits, decoded_sequences (each when asked),
//   plus z_dims, num_steps, backend, versions and timings_ms.
//
// What the numbers mean (read from @magenta/music 1.23.1, music_vae/model.ts and core/data.ts):
// - MusicVAE.encodeTensors/encode return the encoder's mu (the bidirectional LSTM's final states
//   through encoder/mu); there is no sampling, and encoder/sigma is never read.
// - GrooveDecoder.sample with no temperature keeps a hit where sigmoid(logit) > 0.5, i.e. a greedy,
//   deterministic decode; velocities are sigmoid and offsets tanh of their logits at any temperature.
//   A temperature (even 0.5) draws hits from uniform noise, so we pass none.
// - decoded_logits are the output projection's raw values at each step, recorded by wrapping the
//   decoder's sample(); the hits fed back are the thresholded ones, exactly as in the decode.
'use strict';

const fs = require('fs');

// MusicVAE logs through console.log; keep stdout for our one-line summary.
const stdoutLog = console.log;
console.log = (...args) => console.error(...args);

const tf = require('@tensorflow/tfjs');
const mvae = require('@magenta/music/node/music_vae');

function parseArgs(argv) {
  const args = {};
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i];
    if (!key.startsWith('--') || i + 1 >= argv.length) {
      throw new Error(`usage: groovae_check.js --checkpoint URL --input IN --output OUT (at ${key})`);
    }
    args[key.slice(2)] = argv[i + 1];
  }
  for (const need of ['checkpoint', 'input', 'output']) {
    if (!args[need]) throw new Error(`missing --${need}`);
  }
  return args;
}

function noteSequenceToJson(ns) {
  return {
    totalTime: ns.totalTime,
    tempos: (ns.tempos || []).map((t) => ({qpm: t.qpm, time: t.time || 0})),
    notes: ns.notes.map((n) => ({
      pitch: n.pitch, velocity: n.velocity, startTime: n.startTime, endTime: n.endTime,
      isDrum: !!n.isDrum,
    })),
  };
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const request = JSON.parse(fs.readFileSync(args.input, 'utf8'));
  const out = {timings_ms: {}};
  const clock = () => Number(process.hrtime.bigint() / 1000000n);

  // The pure-JS CPU kernels: no native addon, no WebGL (which cannot start under Node anyway).
  await tf.setBackend('cpu');
  await tf.ready();
  out.backend = tf.getBackend();
  out.versions = {
    node: process.version,
    tfjs: tf.version.tfjs,
    magenta_music: require('@magenta/music/package.json').version,
  };

  let t0 = clock();
  const model = new mvae.MusicVAE(args.checkpoint);
  await model.initialize();
  out.timings_ms.initialize = clock() - t0;
  out.z_dims = model.zDims;
  out.num_steps = model.dataConverter.numSteps;

  if (request.tensors) {
    t0 = clock();
    const x = tf.tensor3d(request.tensors, undefined, 'float32');
    const z = await model.encodeTensors(x);
    out.z = await z.array();
    x.dispose();
    z.dispose();
    out.timings_ms.encode_tensors = clock() - t0;
  }

  if (request.sequences) {
    t0 = clock();
    const tensors = request.sequences.map((ns) => model.dataConverter.toTensor(ns));
    out.sequence_tensors = await Promise.all(tensors.map((t) => t.array()));
    tensors.forEach((t) => t.dispose());
    const z = await model.encode(request.sequences);
    out.sequence_z = await z.array();
    z.dispose();
    out.timings_ms.encode_sequences = clock() - t0;
  }

  if (request.z) {
    t0 = clock();
    // Record each step's projection output before GrooveDecoder.sample thresholds it.
    const decoder = model.decoder;
    const sample = decoder.sample.bind(decoder);
    const stepLogits = [];
    decoder.sample = (lstmOutput, temperature) => {
      stepLogits.push(tf.keep(lstmOutput.clone()));
      return sample(lstmOutput, temperature);
    };
    const z = tf.tensor2d(request.z, undefined, 'float32');
    const decoded = await model.decodeTensors(z);  // no temperature: greedy hits
    decoder.sample = sample;
    out.decoded = await decoded.array();
    const logits = tf.stack(stepLogits, 1);
    out.decoded_logits = await logits.array();
    out.decoded_sequences = [];
    for (const groove of tf.unstack(decoded)) {
      out.decoded_sequences.push(noteSequenceToJson(await model.dataConverter.toNoteSequence(groove)));
      groove.dispose();
    }
    [z, decoded, logits, ...stepLogits].forEach((t) => t.dispose());
    out.timings_ms.decode = clock() - t0;
  }

  model.dispose();
  fs.writeFileSync(args.output, JSON.stringify(out));
  stdoutLog(`groovae_check: ok (${out.backend}, z_dims ${out.z_dims}, ${out.num_steps} steps, ` +
            `${JSON.stringify(out.timings_ms)})`);
}

main().catch((err) => {
  console.error(`groovae_check: ${err && err.stack ? err.stack : err}`);
  process.exit(1);
});
