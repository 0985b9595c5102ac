Require Import List.
Import ListNotations.

(** The length of a concatenation is the sum of the lengths. *)
Theorem length_append : forall a b : list nat, length (a ++ b) = length a + length b.
Proof.
  intros a b. induction a as [| x t IH].
  - reflexivity.
  - simpl. rewrite IH. reflexivity.
Qed.
