Require Import List.
Import ListNotations.

(** List concatenation is associative. *)
Theorem append_assoc : forall a b c : list nat, (a ++ b) ++ c = a ++ (b ++ c).
Proof.
  intros a b c. induction a as [| x t IH].
  - reflexivity.
  - simpl. rewrite IH. reflexivity.
Qed.
