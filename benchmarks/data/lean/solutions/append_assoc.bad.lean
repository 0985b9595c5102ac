/-- List concatenation is associative. -/
theorem append_assoc' (a b c : List Nat) : (a ++ b) ++ c = a ++ (b ++ c) := by rfl
