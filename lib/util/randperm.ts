// torch.randperm(n, generator=torch.Generator().manual_seed(seed)) on the CPU, reproduced exactly,
// so that `--course-split` holds out the very conversations the course's notebook holds out.
// PyTorch's CPU generator is a 32-bit Mersenne Twister (mt19937) seeded the standard way, and its
// randperm is a forward Fisher-Yates that swaps r[i] with r[i + random() % (n - i)]. Pinned against
// torch 2.13 in test/course-data.test.ts.

const N = 624;
const M = 397;

/** mt19937 as std::mt19937 and PyTorch's `at::mt19937`: returns a function giving uint32 values. */
export function mt19937(seed: number): () => number {
  const mt = new Uint32Array(N);
  mt[0] = seed >>> 0;
  for (let i = 1; i < N; i++) {
    const prev = mt[i - 1]! ^ (mt[i - 1]! >>> 30);
    mt[i] = (Math.imul(1812433253, prev) + i) >>> 0;
  }
  let index = N;
  const twist = () => {
    for (let i = 0; i < N; i++) {
      const y = (mt[i]! & 0x80000000) | (mt[(i + 1) % N]! & 0x7fffffff);
      mt[i] = mt[(i + M) % N]! ^ (y >>> 1) ^ (y & 1 ? 0x9908b0df : 0);
    }
    index = 0;
  };
  return () => {
    if (index >= N) twist();
    let y = mt[index++]!;
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  };
}

/** `torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()` (CPU). */
export function torchRandperm(n: number, seed: number): number[] {
  if (!Number.isInteger(n) || n < 0) throw new Error(`randperm needs a count >= 0, got \`${n}\``);
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new Error(`randperm seed must be an integer in [0, 2^32), got \`${seed}\``);
  const random = mt19937(seed);
  const r = Array.from({ length: n }, (_, i) => i);
  for (let i = 0; i < n - 1; i++) {
    const z = random() % (n - i);
    [r[i], r[z + i]] = [r[z + i]!, r[i]!];
  }
  return r;
}
