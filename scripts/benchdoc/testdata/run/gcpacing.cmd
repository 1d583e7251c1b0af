ROUNDS=3 scripts/gc-pacing.sh
