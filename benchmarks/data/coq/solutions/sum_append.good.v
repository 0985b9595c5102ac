Require Import Arith List.
Import ListNotations.

(** The sum of a list's elements. *)
Fixpoint sum (l : list nat) : nat :=
  match l with
  | [] => 0
  | x :: t => x + sum t
  end.

(** Summing a concatenation adds the two sums. *)
Theorem sum_append : forall a b : list nat, sum (a ++ b) = sum a + sum b.
Proof.
  intros a b. induction a as [| x t IH].
  - reflexivity.
  - simpl. rewrite IH. rewrite Nat.add_assoc. reflexivity.
Qed.
