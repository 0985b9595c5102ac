/-- List concatenation is associative. -/
theorem append_assoc' (a b c : List Nat) : (a ++ b) ++ c = a ++ (b ++ c) := by
  induction a with
  | nil => rfl
  | cons x t ih => simp [ih]
