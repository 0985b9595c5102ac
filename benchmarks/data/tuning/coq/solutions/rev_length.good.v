Require Import List.
Import ListNotations.

(** Reversing a list keeps its length. *)
Theorem rev_keeps_length : forall l : list nat, length (rev l) = length l.
Proof.
  intros l. induction l as [| x xs IH].
  - reflexivity.
  - simpl. rewrite app_length. simpl. rewrite IH. rewrite <- plus_n_Sm. rewrite <- plus_n_O. reflexivity.
Qed.
