/**
 * Seeded pseudo-randomness for the ChaosServer: mulberry32 (a 32-bit state PRNG with good statistical quality
 * for fault injection) and string / integer hashing to derive independent streams from a seed.
 */

/** A generator of uniform numbers in [0, 1). */
export type Uniform = () => number

/** mulberry32: a small, fast, seedable PRNG. The same seed gives the same sequence on every platform. */
export const mulberry32 = (seed: number): Uniform => {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** Mixes two 32-bit integers into one (murmur3's finalizer over a combination). */
export const mix = (a: number, b: number): number => {
  let h = (Math.imul(a >>> 0, 0x9e3779b1) ^ (b >>> 0)) >>> 0
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b)
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35)
  return (h ^ (h >>> 16)) >>> 0
}

/** FNV-1a over the UTF-16 code units of a string, seeded. */
export const hashString = (text: string, seed: number): number => {
  let h = (0x811c9dc5 ^ seed) >>> 0
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i)
    h = Math.imul(h, 0x01000193) >>> 0
  }
  return mix(h, seed)
}

/** The generator of request number `index` (0-based) of a server seeded with `seed`. */
export const forRequest = (seed: number, index: number): Uniform => mulberry32(mix(seed, index))
