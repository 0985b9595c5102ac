/-- The sum of a list's elements. -/
def sumList : List Nat → Nat
  | [] => 0
  | x :: t => x + sumList t

/-- Summing a concatenation adds the two sums. -/
theorem sumList_append (a b : List Nat) : sumList (a ++ b) = sumList a + sumList b := by
  induction a with
  | nil => simp [sumList]
  | cons x t ih => simp [sumList, ih, Nat.add_assoc]
