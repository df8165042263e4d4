"""Local development: `devnet` (Anvil, deployment, a DEV enclave), `toolchain` (the pinned tools and build
outputs), `v4` (a local Uniswap v4) and `consumer` (the example consumer's client)."""
