/-- The maximum, by comparison. -/
def maxOf (a b : Nat) : Nat := if a ≤ b then b else a

/-- It bounds both arguments. -/
theorem maxOf_upper (a b : Nat) : a ≤ maxOf a b ∧ b ≤ maxOf a b := ⟨Nat.le_refl a, Nat.le_refl b⟩
