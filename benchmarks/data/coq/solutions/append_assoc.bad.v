Require Import List.
Import ListNotations.

(** List concatenation is associative. *)
Theorem append_assoc : forall a b c : list nat, (a ++ b) ++ c = a ++ (b ++ c).
Proof.
  intros a b c. induction b as [| x t IH]; simpl; reflexivity.
Qed.
